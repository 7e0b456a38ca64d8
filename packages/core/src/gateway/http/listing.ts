/** Keeps the entries of `list` (an array in Ollama's or OpenAI's list document) that pass. */
export function filterList(
  doc: unknown,
  listKey: 'models' | 'data',
  keep: (entry: Record<string, unknown>) => boolean,
): Record<string, unknown> {
  const d = (doc && typeof doc === 'object' ? doc : {}) as Record<string, unknown>
  const list = Array.isArray(d[listKey]) ? (d[listKey] as unknown[]) : []
  return {
    ...d,
    [listKey]: list.filter((m) => !!m && typeof m === 'object' && keep(m as Record<string, unknown>)),
  }
}

import type { Principal } from '../../access/access'
import type { GatewayPolicy } from '../policy'
import { modelAllowed, normaliseModelName } from '../patterns'

/**
 * Which models a caller sees in `/ollama/api/tags` and `/v1/models`: those its role allows and whose fit
 * estimate is within its allocation. A model whose estimate is unknown (Ollama's catalog could not be read)
 * is listed, as the policy would admit it too; one that is known not to fit is not.
 */
export async function listableFilter(
  policy: GatewayPolicy,
  principal: Principal,
): Promise<(name: unknown) => boolean> {
  if (principal.kind === 'admin') return (name) => typeof name === 'string'
  const { role } = principal
  const views = await policy.modelsFor(principal)
  const exceeds = new Set(
    views.filter((v) => v.verdict === 'exceeds_allocation').map((v) => normaliseModelName(v.name)),
  )
  return (name) =>
    typeof name === 'string' &&
    modelAllowed(role.allowed_models, name) &&
    !exceeds.has(normaliseModelName(name))
}

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

/**
 * Ollama's keep_alive: a number of seconds, or a Go duration string ("5m", "1h30m", "300ms"); negative
 * means "forever". Returns seconds (Infinity for forever), or undefined when it cannot be read.
 */
export function keepAliveSeconds(value: unknown): number | undefined {
  if (typeof value === 'number' && Number.isFinite(value)) return value < 0 ? Number.POSITIVE_INFINITY : value
  if (typeof value !== 'string') return undefined
  const s = value.trim()
  if (/^-?\d+(\.\d+)?$/.test(s)) {
    const n = Number(s)
    return n < 0 ? Number.POSITIVE_INFINITY : n
  }
  if (s.startsWith('-')) return Number.POSITIVE_INFINITY
  const re = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g
  const units: Record<string, number> = { ns: 1e-9, us: 1e-6, µs: 1e-6, ms: 1e-3, s: 1, m: 60, h: 3600 }
  let total = 0
  let consumed = 0
  for (const m of s.matchAll(re)) {
    total += Number(m[1]) * (units[m[2] as string] ?? 0)
    consumed += m[0].length
  }
  return consumed === s.length && consumed > 0 ? total : undefined
}

/** Ollama's default when a request names no keep_alive. */
export const OLLAMA_DEFAULT_KEEP_ALIVE_S = 300

/**
 * The keep_alive to forward: the request's own when within the role's maximum, else the maximum. An
 * unreadable value is replaced by the maximum too (Ollama would reject it anyway).
 */
export function clampKeepAlive(requested: unknown, maxSeconds: number | null): number | string | undefined {
  if (maxSeconds === null) return requested as number | string | undefined
  if (requested === undefined || requested === null) {
    return OLLAMA_DEFAULT_KEEP_ALIVE_S > maxSeconds ? maxSeconds : undefined
  }
  const secs = keepAliveSeconds(requested)
  if (secs === undefined || secs > maxSeconds) return maxSeconds
  return requested as number | string
}

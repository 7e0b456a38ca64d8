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

/** Ollama's default keep_alive (envconfig/config.go KeepAlive: 5 min) when OLLAMA_KEEP_ALIVE is unset. */
export const OLLAMA_DEFAULT_KEEP_ALIVE_S = 300

/**
 * The keep_alive to forward, always as a number of seconds (api/types.go Duration: a JSON number is
 * seconds, a string goes through time.ParseDuration, so `"300"` would be a 400 from Ollama): the
 * request's own when within the role's maximum, else the maximum. Absent: the maximum, because Ollama
 * would otherwise apply its own OLLAMA_KEEP_ALIVE, which may be forever. An unreadable value is replaced
 * by the maximum too. With no maximum (null) the request's value goes normalised, and absent stays absent.
 */
export function clampKeepAlive(requested: unknown, maxSeconds: number | null): number | undefined {
  const secs = requested === undefined || requested === null ? undefined : keepAliveSeconds(requested)
  if (maxSeconds === null) {
    if (secs === undefined) return undefined
    return secs === Number.POSITIVE_INFINITY ? -1 : secs
  }
  if (secs === undefined || secs > maxSeconds) return maxSeconds
  return secs
}

/**
 * The one exponential backoff: `initialMs × 2^step`, at most `maxMs` (step 0 is the first retry). The
 * Ollama watchdog's restarts use it; so should every other retry loop.
 */
export function backoffDelay(step: number, o: { initialMs: number; maxMs: number }): number {
  const n = Math.max(0, Math.floor(step))
  return Math.min(o.maxMs, o.initialMs * 2 ** Math.min(n, 30))
}

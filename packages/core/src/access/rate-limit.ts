/**
 * Sliding-window counter per key (an IP, a device id). In memory: limits reset on restart, which is fine
 * for abuse control on a LAN. Old keys are swept so a flood of distinct keys cannot grow it without bound.
 */
export class RateLimiter {
  private readonly hits = new Map<string, number[]>()
  private lastSweep = 0

  constructor(
    private readonly limit: number,
    private readonly windowMs: number,
    private readonly now: () => number = Date.now,
    private readonly maxKeys = 10_000,
  ) {}

  /** Records a hit; returns 0 when allowed, else the seconds until the next hit would be allowed. */
  hit(key: string, limit = this.limit): number {
    const now = this.now()
    this.sweep(now)
    const from = now - this.windowMs
    const list = (this.hits.get(key) ?? []).filter((t) => t > from)
    if (list.length >= limit) {
      this.hits.set(key, list)
      const oldest = list[0] ?? now
      return Math.max(1, Math.ceil((oldest + this.windowMs - now) / 1000))
    }
    list.push(now)
    this.hits.set(key, list)
    return 0
  }

  reset(key?: string): void {
    if (key === undefined) this.hits.clear()
    else this.hits.delete(key)
  }

  private sweep(now: number): void {
    if (now - this.lastSweep < this.windowMs && this.hits.size < this.maxKeys) return
    this.lastSweep = now
    const from = now - this.windowMs
    for (const [key, list] of this.hits) {
      if (!list.some((t) => t > from)) this.hits.delete(key)
    }
    // Still too many live keys: drop the oldest entries rather than grow without bound.
    if (this.hits.size >= this.maxKeys) {
      const excess = this.hits.size - Math.floor(this.maxKeys / 2)
      let i = 0
      for (const key of this.hits.keys()) {
        if (i++ >= excess) break
        this.hits.delete(key)
      }
    }
  }
}

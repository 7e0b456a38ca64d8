import type { QuotaCrossing } from '../protocol/types'
import { QUOTA_WINDOWS, quotaCrossings, quotaStatus, type TokenBudgets } from './quota'

export interface QuotaWatchOptions {
  /** A device's tokens since each window start it is asked about (the rollups plus the recorder's buffer). */
  usedSince: (deviceId: string, now: number) => Promise<(from: number) => number>
  zone: () => string
}

/**
 * Which 80 % / 100 % marks each finished request passes, per device: the tokens per window start are read
 * once per device and then kept up to date in memory, and the requests of one device are taken in order, so
 * parallel requests that cross a mark together report it once. A new window starts from zero.
 */
export class QuotaWatch {
  private readonly used = new Map<string, Map<number, number>>()
  private readonly chains = new Map<string, Promise<unknown>>()
  /** Tokens handed to `observe` and not yet applied, per device (already in the recorder). */
  private readonly pending = new Map<string, number>()

  constructor(private readonly o: QuotaWatchOptions) {}

  /**
   * Adds a finished request's tokens (counted at `now`) and resolves with the marks it crossed. Devices
   * without a budget cost nothing. Never rejects (a failed read reports nothing).
   */
  observe(deviceId: string, budgets: TokenBudgets, tokens: number, now: number): Promise<QuotaCrossing[]> {
    if (QUOTA_WINDOWS.every((w) => budgets[w] === null) || !(tokens > 0)) return Promise.resolve([])
    this.pending.set(deviceId, (this.pending.get(deviceId) ?? 0) + tokens)
    const prev = this.chains.get(deviceId) ?? Promise.resolve()
    const next = prev.then(() => this.step(deviceId, budgets, tokens, now)).catch(() => [] as QuotaCrossing[])
    this.chains.set(deviceId, next)
    void next.finally(() => {
      if (this.chains.get(deviceId) === next) this.chains.delete(deviceId)
    })
    return next
  }

  /** Forget a device (its usage was read again elsewhere, or it is gone). */
  forget(deviceId: string): void {
    this.used.delete(deviceId)
  }

  private applied(deviceId: string, tokens: number): void {
    const left = (this.pending.get(deviceId) ?? 0) - tokens
    if (left <= 0) this.pending.delete(deviceId)
    else this.pending.set(deviceId, left)
  }

  private async step(
    deviceId: string,
    budgets: TokenBudgets,
    tokens: number,
    now: number,
  ): Promise<QuotaCrossing[]> {
    const zone = this.o.zone()
    let m = this.used.get(deviceId)
    if (!m) {
      // The first request of a device since start: its usage so far, which already holds the tokens of
      // every request recorded and not yet applied here (this one included), so they come off again.
      let read: (from: number) => number
      try {
        read = await this.o.usedSince(deviceId, now)
      } catch (err) {
        this.applied(deviceId, tokens)
        throw err
      }
      const unapplied = this.pending.get(deviceId) ?? 0
      m = new Map()
      for (const w of quotaStatus(budgets, read, now, zone).windows) {
        m.set(w.starts_at, Math.max(0, w.used - unapplied))
      }
      this.used.set(deviceId, m)
    }
    this.applied(deviceId, tokens)
    const map = m
    const before = quotaStatus(budgets, (from) => map.get(from) ?? 0, now, zone)
    const starts = new Set(before.windows.map((w) => w.starts_at))
    for (const s of [...map.keys()]) if (!starts.has(s)) map.delete(s)
    for (const s of starts) map.set(s, (map.get(s) ?? 0) + tokens)
    const after = quotaStatus(budgets, (from) => map.get(from) ?? 0, now, zone)
    return quotaCrossings(deviceId, before, after)
  }
}

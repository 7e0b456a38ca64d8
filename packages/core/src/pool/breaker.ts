import type { PeerBreakerState } from '../protocol/types'

export interface BreakerOptions {
  /** Consecutive failures that open it. @default 3 */
  threshold?: number
  /** How long it stays open before one trial request. @default 30000 */
  openMs?: number
  now?: () => number
}

/**
 * A per-peer circuit breaker: `threshold` consecutive failures open it for `openMs`; then exactly one trial
 * request goes through (half open): its success closes it, its failure opens it again.
 */
export class Breaker {
  private failures = 0
  private openUntil: number | null = null
  private trial = false
  private lastFailure: string | null = null
  private readonly threshold: number
  private readonly openMs: number
  private readonly now: () => number

  constructor(o: BreakerOptions = {}) {
    this.threshold = o.threshold ?? 3
    this.openMs = o.openMs ?? 30_000
    this.now = o.now ?? Date.now
  }

  /** Whether a request could be sent now (does not take the trial). */
  available(): boolean {
    if (this.openUntil === null) return true
    return this.now() >= this.openUntil && !this.trial
  }

  /** Takes the right to send one request: always when closed; the single trial when the wait is over. */
  allow(): boolean {
    if (this.openUntil === null) return true
    if (this.now() < this.openUntil || this.trial) return false
    this.trial = true
    return true
  }

  /** The request that took the trial ended with no verdict (the client left): the next one may try. */
  release(): void {
    this.trial = false
  }

  success(): void {
    this.failures = 0
    this.openUntil = null
    this.trial = false
  }

  failure(reason: string): void {
    this.failures++
    this.lastFailure = reason
    if (this.trial || this.failures >= this.threshold) {
      this.openUntil = this.now() + this.openMs
      this.trial = false
    }
  }

  view(): PeerBreakerState {
    const state = this.openUntil === null ? 'closed' : this.now() >= this.openUntil ? 'half_open' : 'open'
    return {
      state,
      failures: this.failures,
      open_until: this.openUntil,
      last_failure: this.lastFailure,
    }
  }
}

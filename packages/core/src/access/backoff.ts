import type { Logger } from '../logger'
import { isLoopbackIp, sourceKey } from '../tls/addresses'

export interface BackoffOptions {
  /** Failures a source may have before it must wait. @default 5 */
  freeFailures?: number
  /** First wait after the free failures, doubling each time. @default 1000 */
  baseMs?: number
  /** Longest wait for one source. @default 15 minutes */
  maxMs?: number
  /** A source's failures are forgotten this long after its last one. @default 1 hour */
  forgetMs?: number
  /** Failures from all sources in a minute before everyone (but loopback) must wait. @default 100 */
  globalPerMinute?: number
  now?: () => number
  log?: Logger
  /** What is guessed, for the log. @default 'admin authentication' */
  what?: string
}

interface SourceState {
  failures: number
  last: number
}

/**
 * Backoff on failed guesses of a secret, per source (an IPv4 address or an IPv6 /64) and over all sources:
 * after `freeFailures`, a source waits 1 s, 2 s, 4 s … before its next try counts; when the whole LAN fails
 * `globalPerMinute` times in a minute, every source but loopback waits until the minute has passed, so the
 * owner at the machine can still log in. In memory: a restart forgets, which only costs the guesser time.
 */
export class AuthBackoff {
  private readonly sources = new Map<string, SourceState>()
  private readonly recent: number[] = []
  private readonly o: Required<Omit<BackoffOptions, 'log'>> & { log?: Logger }
  private warnedGlobalAt = 0

  constructor(o: BackoffOptions = {}) {
    this.o = {
      freeFailures: o.freeFailures ?? 5,
      baseMs: o.baseMs ?? 1000,
      maxMs: o.maxMs ?? 15 * 60_000,
      forgetMs: o.forgetMs ?? 3600_000,
      globalPerMinute: o.globalPerMinute ?? 100,
      now: o.now ?? Date.now,
      what: o.what ?? 'admin authentication',
      ...(o.log ? { log: o.log } : {}),
    }
  }

  /** Seconds `source` must wait before its next try is looked at; 0 when it may try now. */
  retryAfter(source: string): number {
    const now = this.o.now()
    const s = this.state(source, now)
    let waitMs = 0
    if (s && s.failures >= this.o.freeFailures) {
      const step = Math.min(this.o.maxMs, this.o.baseMs * 2 ** (s.failures - this.o.freeFailures))
      waitMs = s.last + step - now
    }
    if (!isLoopbackIp(source)) {
      this.trim(now)
      if (this.recent.length >= this.o.globalPerMinute) {
        waitMs = Math.max(waitMs, (this.recent[0] as number) + 60_000 - now)
      }
    }
    return waitMs > 0 ? Math.ceil(waitMs / 1000) : 0
  }

  fail(source: string): void {
    const now = this.o.now()
    const key = sourceKey(source)
    const s = this.state(source, now) ?? { failures: 0, last: now }
    s.failures++
    s.last = now
    this.sources.set(key, s)
    this.recent.push(now)
    this.trim(now)
    if (this.sources.size > 10_000) this.sweep(now)
    this.o.log?.warn({ source: key, failures: s.failures }, `failed ${this.o.what}`)
    if (this.recent.length >= this.o.globalPerMinute && now - this.warnedGlobalAt > 60_000) {
      this.warnedGlobalAt = now
      this.o.log?.warn(
        { failures_last_minute: this.recent.length },
        `too many failed ${this.o.what} attempts on the LAN: every source but loopback waits`,
      )
    }
  }

  succeed(source: string): void {
    this.sources.delete(sourceKey(source))
  }

  private state(source: string, now: number): SourceState | undefined {
    const key = sourceKey(source)
    const s = this.sources.get(key)
    if (s && now - s.last > this.o.forgetMs) {
      this.sources.delete(key)
      return undefined
    }
    return s
  }

  private trim(now: number): void {
    while (this.recent.length > 0 && (this.recent[0] as number) <= now - 60_000) this.recent.shift()
    if (this.recent.length > this.o.globalPerMinute * 2)
      this.recent.splice(0, this.recent.length - this.o.globalPerMinute * 2)
  }

  private sweep(now: number): void {
    for (const [k, s] of this.sources) if (now - s.last > this.o.forgetMs) this.sources.delete(k)
    if (this.sources.size > 10_000) this.sources.clear()
  }
}

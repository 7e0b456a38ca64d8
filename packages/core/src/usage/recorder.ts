import type { Knex } from 'knex'
import { errorMessage } from '../errors'
import type { UsageRecord } from '../protocol/types'
import { type Clock, systemClock } from '../fairshare/clock'
import {
  addRollup,
  emptyWaitHistogram,
  queueWaitBucket,
  type RawUsageRow,
  type RollupDelta,
  usageRollupsRepo,
} from '../store/usage-rollups'
import { hostTimeZone, startOfHour } from './zoned'

/** One finished gateway request, as the gateway hands it over (a usage record before it has an id). */
export interface UsageEvent extends Omit<UsageRecord, 'id' | 'at' | 'via'> {
  /** Milliseconds it waited in the fair-share queue; absent when it did not go through the queue. */
  queue_wait_ms?: number
  /** When it finished. @default the clock's now */
  at?: number
  /** The peer host that served a routed request (its name); absent when this host served it. */
  via?: string | null
  /** Counted in the hourly rollups only, with no raw row (a refused request). */
  rollupOnly?: boolean
}

export interface UsageRecorderOptions {
  db: () => Knex
  clock?: Clock
  /** The host's time zone; hours are local hours. @default the process's zone */
  timeZone?: () => string
  /** At most this long between flushes, in ms. @default 500 (so a crash loses under a second) */
  flushIntervalMs?: number
  /** Raw rows held before a flush starts early; past twice this, raw rows are dropped (rollups stay exact). @default 5000 */
  maxBuffered?: number
  /** Retention, from the settings; pruning runs at start and then hourly. */
  retention?: () => { rawDays: number; rollupDays: number }
  /** A flush or prune failed; the rows stay buffered and the next flush tries again. Never throws. */
  onError?: (message: string) => void
}

const DAY = 86_400_000

function clean(n: unknown): number {
  const v = Number(n)
  return Number.isFinite(v) && v > 0 ? Math.floor(v) : 0
}

/**
 * Writes usage off the request path: `record()` only appends to memory; a timer writes the raw rows and the
 * device × model × hour rollups in one transaction at least every `flushIntervalMs`, and `stop()` writes
 * the rest. A crash (SIGKILL) loses at most what arrived since the last flush.
 */
export class UsageRecorder {
  private raw: RawUsageRow[] = []
  private deltas = new Map<string, RollupDelta>()
  /** Being written right now: still counted by `pendingTokens` until the commit. */
  private writing = new Map<string, RollupDelta>()
  private writingRaw: RawUsageRow[] = []
  private timer: unknown
  private pruneTimer: unknown
  private flushing: Promise<void> | undefined
  private started = false
  private stopped = false
  private lastHour: { zone: string; start: number } | undefined
  private readonly clock: Clock
  private readonly intervalMs: number
  private readonly maxBuffered: number
  readonly stats = { recorded: 0, flushed: 0, dropped: 0, failures: 0, batches: 0 }

  constructor(private readonly options: UsageRecorderOptions) {
    this.clock = options.clock ?? systemClock
    this.intervalMs = Math.min(1000, Math.max(10, options.flushIntervalMs ?? 500))
    this.maxBuffered = Math.max(1, options.maxBuffered ?? 5000)
  }

  start(): void {
    if (this.started) return
    this.started = true
    this.stopped = false
    this.arm()
    if (this.options.retention) {
      void this.prune()
      const hourly = () => {
        this.pruneTimer = this.clock.setTimer(() => {
          void this.prune().finally(() => this.started && hourly())
        }, 3_600_000)
      }
      hourly()
    }
  }

  /** Writes what is buffered and stops the timers. */
  async stop(): Promise<void> {
    this.started = false
    this.stopped = true
    if (this.timer !== undefined) this.clock.clearTimer(this.timer)
    if (this.pruneTimer !== undefined) this.clock.clearTimer(this.pruneTimer)
    this.timer = undefined
    this.pruneTimer = undefined
    await this.flush()
  }

  /** O(1), synchronous, never throws: the gateway calls it as a request ends. */
  record(e: UsageEvent): void {
    const at = typeof e.at === 'number' && Number.isFinite(e.at) ? e.at : this.clock.now()
    const row: RawUsageRow = {
      device_id: e.device_id ?? null,
      model: e.model ?? null,
      endpoint: String(e.endpoint).slice(0, 200),
      prompt_tokens: clean(e.prompt_tokens),
      completion_tokens: clean(e.completion_tokens),
      duration_ms: clean(e.duration_ms),
      status: Number.isInteger(e.status) ? e.status : 0,
      at,
      via: typeof e.via === 'string' ? e.via.slice(0, 200) : null,
    }
    this.stats.recorded++
    if (e.rollupOnly !== true) {
      if (this.raw.length < 2 * this.maxBuffered) this.raw.push(row)
      else this.stats.dropped++
    }
    const hour = this.hourOf(at)
    const key = `${row.device_id ?? ''}\u0000${row.model ?? ''}\u0000${hour}`
    let d = this.deltas.get(key)
    if (!d) {
      d = {
        device_id: row.device_id ?? '',
        model: row.model ?? '',
        hour_start: hour,
        requests: 0,
        errors: 0,
        prompt_tokens: 0,
        completion_tokens: 0,
        duration_ms: 0,
        queue_wait_ms: 0,
        queued: 0,
        queue_wait_hist: emptyWaitHistogram(),
      }
      this.deltas.set(key, d)
    }
    d.requests++
    if (row.status >= 400 || row.status === 0) d.errors++
    d.prompt_tokens += row.prompt_tokens
    d.completion_tokens += row.completion_tokens
    d.duration_ms += row.duration_ms
    if (typeof e.queue_wait_ms === 'number' && Number.isFinite(e.queue_wait_ms)) {
      const wait = clean(e.queue_wait_ms)
      d.queue_wait_ms += wait
      d.queued++
      const b = queueWaitBucket(wait)
      d.queue_wait_hist[b] = (d.queue_wait_hist[b] ?? 0) + 1
    }
    // After stop() no timer runs: a request that ends during shutdown is written at once.
    if (this.stopped) void this.flush()
    else if (this.raw.length >= this.maxBuffered && !this.flushing) void this.flush()
  }

  /** Tokens of a device in buckets from `from` on that are recorded but not yet committed. */
  pendingTokens(deviceId: string, from: number): number {
    let n = 0
    for (const map of [this.deltas, this.writing]) {
      for (const d of map.values()) {
        if (d.device_id === deviceId && d.hour_start >= from) n += d.prompt_tokens + d.completion_tokens
      }
    }
    return n
  }

  /**
   * Requests and tokens of a device in the raw rows recorded but not yet committed (any hour): what the
   * stored totals (the raw rows) will gain, so a refusal (rollups only) is not counted and then dropped.
   */
  pendingTotals(deviceId: string): { requests: number; prompt_tokens: number; completion_tokens: number } {
    const t = { requests: 0, prompt_tokens: 0, completion_tokens: 0 }
    for (const rows of [this.raw, this.writingRaw]) {
      for (const r of rows) {
        if (r.device_id !== deviceId) continue
        t.requests++
        t.prompt_tokens += r.prompt_tokens
        t.completion_tokens += r.completion_tokens
      }
    }
    return t
  }

  /** Writes everything buffered now (one batch at a time). Never rejects. */
  flush(): Promise<void> {
    const run = async (): Promise<void> => {
      if (this.flushing) await this.flushing
      if (this.raw.length === 0 && this.deltas.size === 0) return
      const raw = this.raw
      const deltas = this.deltas
      this.raw = []
      this.deltas = new Map()
      this.writing = deltas
      this.writingRaw = raw
      try {
        await usageRollupsRepo.writeBatch(this.options.db(), raw, [...deltas.values()])
        this.stats.flushed += raw.length
        this.stats.batches++
      } catch (err) {
        // Put the batch back in front; the next flush tries again.
        this.stats.failures++
        this.raw = [...raw, ...this.raw].slice(0, 2 * this.maxBuffered)
        for (const [k, d] of deltas) {
          const cur = this.deltas.get(k)
          if (!cur) {
            this.deltas.set(k, d)
            continue
          }
          addRollup(cur, d)
        }
        this.report(`usage flush failed (${raw.length} rows kept for the next try): ${errorMessage(err)}`)
      } finally {
        this.writing = new Map()
        this.writingRaw = []
      }
    }
    const p = run().finally(() => {
      if (this.flushing === p) this.flushing = undefined
    })
    this.flushing = p
    return p
  }

  /** Deletes raw rows and rollups older than the retention settings. Never rejects. */
  async prune(): Promise<{ raw: number; rollups: number }> {
    const r = this.options.retention?.()
    if (!r) return { raw: 0, rollups: 0 }
    const now = this.clock.now()
    try {
      return await usageRollupsRepo.prune(this.options.db(), now - r.rawDays * DAY, now - r.rollupDays * DAY)
    } catch (err) {
      this.report(`usage pruning failed: ${errorMessage(err)}`)
      return { raw: 0, rollups: 0 }
    }
  }

  /** The local hour of `at`; the last one is remembered, so most calls skip Intl. */
  private hourOf(at: number): number {
    const zone = this.zone()
    const c = this.lastHour
    if (c && c.zone === zone && at >= c.start && at < c.start + 3_600_000) return c.start
    let start: number
    try {
      start = startOfHour(at, zone)
    } catch {
      start = at - (at % 3_600_000)
    }
    this.lastHour = { zone, start }
    return start
  }

  private zone(): string {
    return this.options.timeZone?.() ?? hostTimeZone()
  }

  private arm(): void {
    this.timer = this.clock.setTimer(() => {
      void this.flush().finally(() => {
        if (this.started) this.arm()
      })
    }, this.intervalMs)
  }

  private report(message: string): void {
    try {
      this.options.onError?.(message)
    } catch {
      // The reporter's failure must not stop the recorder.
    }
  }
}

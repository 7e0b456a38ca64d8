import type { Knex } from 'knex'
import { z } from 'zod'
import { SharedLLMError } from '../errors'
import type { UsageBucket, UsageSeriesResponse } from '../protocol/api'
import { parseInput } from '../schemas'
import { emptyWaitHistogram, QUEUE_WAIT_BOUNDS_MS, usageRollupsRepo } from '../store/usage-rollups'
import { isoLocal, startOfHour, windowAt } from './zoned'

const HOUR = 3_600_000
const DAY = 86_400_000
/** Longest range per bucket size: a month of hours, 400 days (the default rollup retention) of days or weeks. */
const MAX_RANGE_MS = { hour: 31 * DAY, day: 400 * DAY, week: 400 * DAY } as const
/** The range when the query gives no `from`. */
const DEFAULT_RANGE_MS = { hour: DAY, day: 30 * DAY, week: 12 * 7 * DAY } as const

/** The end of year 9999 UTC: far past any usage, and far inside what Date (and Intl) can hold. */
const LATEST_INSTANT = 253_402_300_799_999

const instant = z.union([z.number(), z.string()]).transform((v, ctx) => {
  const n = typeof v === 'number' ? v : /^\d+$/.test(v) ? Number(v) : Date.parse(v)
  if (!Number.isFinite(n) || n < 0 || n > LATEST_INSTANT) {
    ctx.addIssue({ code: 'custom', message: 'must be a time between 1970 and 9999: UTC ms or ISO 8601' })
    return z.NEVER
  }
  return n
})

/** `?group=device|model&bucket=hour|day|week&from=&to=` (times as UTC ms or ISO 8601). */
export const usageSeriesQuerySchema = z
  .object({
    group: z.enum(['device', 'model']).default('device'),
    bucket: z.enum(['hour', 'day', 'week']).default('hour'),
    from: instant.optional(),
    to: instant.optional(),
  })
  .strip()
export type UsageSeriesQueryInput = z.input<typeof usageSeriesQuerySchema>

export interface SeriesOptions {
  zone: string
  now: number
  /** Only this device's usage (a device reading its own). */
  deviceId?: string
}

/**
 * Bucket starts covering `[from, to)` in the zone: local hours, local days (23–25 h across DST) or weeks
 * from Monday's local midnight.
 */
export function bucketStarts(bucket: UsageBucket, from: number, to: number, zone: string): number[] {
  const out: number[] = []
  if (bucket === 'hour') {
    for (let t = startOfHour(from, zone); t < to; t += HOUR) out.push(t)
  } else {
    for (let t = windowAt(bucket, from, zone)[0]; t < to; t = windowAt(bucket, t, zone)[1]) out.push(t)
  }
  return out
}

/**
 * The q-quantile (0..1) of a queue-wait histogram in ms, null when it is empty. Exact to the bucket, and
 * linear inside it (as Prometheus' histogram_quantile); a quantile in the open last bucket is its lower
 * bound, the longest wait the histogram can name.
 */
export function waitQuantile(counts: readonly number[], q: number): number | null {
  const total = counts.reduce((a, b) => a + b, 0)
  if (total <= 0) return null
  const rank = q * total
  let below = 0
  for (let i = 0; i < counts.length; i++) {
    const n = counts[i] ?? 0
    if (n > 0 && below + n >= rank) {
      const lower = i === 0 ? 0 : (QUEUE_WAIT_BOUNDS_MS[i - 1] ?? 0)
      const upper = QUEUE_WAIT_BOUNDS_MS[i] ?? lower
      return Math.round(lower + ((upper - lower) * Math.max(0, rank - below)) / n)
    }
    below += n
  }
  return null
}

const addInto = (into: number[], from: readonly number[]) =>
  from.forEach((n, i) => {
    into[i] = (into[i] ?? 0) + n
  })

/**
 * Usage over time from the hourly rollups, grouped by device or model, in hour, day or week buckets of the
 * host's time zone. Every bucket of the range is present (zeros where nothing ran), aligned across series.
 */
export async function usageSeries(
  db: Knex,
  input: UsageSeriesQueryInput | unknown,
  opts: SeriesOptions,
): Promise<UsageSeriesResponse> {
  const q = parseInput(usageSeriesQuerySchema, input ?? {}, 'query')
  const to = q.to ?? opts.now
  const from = q.from ?? to - DEFAULT_RANGE_MS[q.bucket]
  if (from >= to) {
    throw new SharedLLMError('VALIDATION', 'from: must be before to', { details: { field: 'from' } })
  }
  if (to - from > MAX_RANGE_MS[q.bucket]) {
    throw new SharedLLMError(
      'VALIDATION',
      `from: a range of at most ${MAX_RANGE_MS[q.bucket] / DAY} days with ${q.bucket} buckets`,
      { details: { field: 'from' } },
    )
  }
  const buckets = bucketStarts(q.bucket, from, to, opts.zone)
  // Only the hours of the range count, even in a day or week bucket that starts before it: the totals of a
  // range do not change with the bucket size.
  const rows = await usageRollupsRepo.hourly(db, startOfHour(from, opts.zone), to, opts.deviceId)
  const names = q.group === 'device' ? await usageRollupsRepo.deviceNames(db) : new Map<string, string>()
  const index = new Map(buckets.map((b, i) => [b, i]))
  const bucketOf = (t: number) => (q.bucket === 'hour' ? t : windowAt(q.bucket, t, opts.zone)[0])
  const series = new Map<string, UsageSeriesResponse['series'][number]>()
  // Queue-wait histograms per series and bucket, and over all series per bucket.
  const hists = new Map<string, number[][]>()
  const allHists = buckets.map(() => emptyWaitHistogram())
  const queued = buckets.map(() => 0)
  for (const r of rows) {
    const i = index.get(bucketOf(r.hour_start))
    if (i === undefined) continue
    const key = q.group === 'device' ? r.device_id : r.model
    let s = series.get(key)
    if (!s) {
      const zeros = () => buckets.map(() => 0)
      s = {
        key,
        label: labelOf(q.group, key, names),
        requests: zeros(),
        errors: zeros(),
        prompt_tokens: zeros(),
        completion_tokens: zeros(),
        queue_wait_p50_ms: [],
        queue_wait_p95_ms: [],
      }
      series.set(key, s)
      hists.set(
        key,
        buckets.map(() => emptyWaitHistogram()),
      )
    }
    addInto(hists.get(key)?.[i] ?? [], r.queue_wait_hist)
    addInto(allHists[i] ?? [], r.queue_wait_hist)
    queued[i] = (queued[i] ?? 0) + r.queued
    s.requests[i] = (s.requests[i] ?? 0) + r.requests
    s.errors[i] = (s.errors[i] ?? 0) + r.errors
    s.prompt_tokens[i] = (s.prompt_tokens[i] ?? 0) + r.prompt_tokens
    s.completion_tokens[i] = (s.completion_tokens[i] ?? 0) + r.completion_tokens
  }
  for (const [key, s] of series) {
    const h = hists.get(key) ?? []
    s.queue_wait_p50_ms = h.map((c) => waitQuantile(c, 0.5))
    s.queue_wait_p95_ms = h.map((c) => waitQuantile(c, 0.95))
  }
  return {
    group: q.group,
    bucket: q.bucket,
    from,
    to,
    time_zone: opts.zone,
    buckets,
    series: [...series.values()].sort((a, b) => a.label.localeCompare(b.label) || a.key.localeCompare(b.key)),
    queue_wait: {
      queued,
      p50_ms: allHists.map((c) => waitQuantile(c, 0.5)),
      p95_ms: allHists.map((c) => waitQuantile(c, 0.95)),
    },
  }
}

function labelOf(group: 'device' | 'model', key: string, names: Map<string, string>): string {
  if (group === 'model') return key === '' ? '(unknown model)' : key
  if (key === '') return '(host owner)'
  return names.get(key) ?? `(removed device ${key.slice(0, 8)})`
}

/** A CSV cell: quoted when needed, and never read as a formula by a spreadsheet. */
function cell(v: string | number): string {
  let s = String(v)
  if (typeof v === 'string' && /^[=+\-@\t\r]/.test(s)) s = `'${s}`
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s
}

/** The same view as CSV: one line per bucket and series where anything ran. */
export function usageSeriesCsv(view: UsageSeriesResponse): string {
  const lines = [
    [
      'bucket_start_utc',
      'bucket_start_local',
      view.group,
      `${view.group}_label`,
      'requests',
      'errors',
      'prompt_tokens',
      'completion_tokens',
      'queue_wait_p50_ms',
      'queue_wait_p95_ms',
    ].join(','),
  ]
  view.buckets.forEach((b, i) => {
    for (const s of view.series) {
      if (!s.requests[i] && !s.prompt_tokens[i] && !s.completion_tokens[i]) continue
      lines.push(
        [
          new Date(b).toISOString(),
          isoLocal(b, view.time_zone),
          cell(s.key),
          cell(s.label),
          s.requests[i] ?? 0,
          s.errors[i] ?? 0,
          s.prompt_tokens[i] ?? 0,
          s.completion_tokens[i] ?? 0,
          s.queue_wait_p50_ms[i] ?? '',
          s.queue_wait_p95_ms[i] ?? '',
        ].join(','),
      )
    }
  })
  return `${lines.join('\r\n')}\r\n`
}

import type { UsageBucket, UsageSeriesResponse } from '@sharedllm/core/protocol'

export type UsageRange = '24h' | '7d' | '30d'
export type UsageMetric = 'tokens' | 'requests' | 'wait'

const HOUR = 3_600_000
export const RANGE_MS: Record<UsageRange, number> = {
  '24h': 24 * HOUR,
  '7d': 7 * 24 * HOUR,
  '30d': 30 * 24 * HOUR,
}
/** Hour buckets up to a week, day buckets beyond (the API allows hours for at most a month). */
export const defaultBucket = (r: UsageRange): UsageBucket => (r === '30d' ? 'day' : 'hour')

export interface UsageTotalsRow {
  key: string
  label: string
  requests: number
  errors: number
  prompt_tokens: number
  completion_tokens: number
  tokens: number
}

const sum = (a: number[]) => a.reduce((s, v) => s + v, 0)

/** The top table: each series summed over the range, most tokens first (ties by requests, then label). */
export function topRows(res: UsageSeriesResponse): UsageTotalsRow[] {
  return res.series
    .map((s) => {
      const prompt = sum(s.prompt_tokens)
      const completion = sum(s.completion_tokens)
      return {
        key: s.key,
        label: s.label,
        requests: sum(s.requests),
        errors: sum(s.errors),
        prompt_tokens: prompt,
        completion_tokens: completion,
        tokens: prompt + completion,
      }
    })
    .filter((r) => r.requests > 0 || r.tokens > 0)
    .sort((a, b) => b.tokens - a.tokens || b.requests - a.requests || a.label.localeCompare(b.label))
}

/** One line of the chart; null is a gap (a bucket with nothing to show, e.g. no queued request). */
export interface ChartLine {
  label: string
  values: Array<number | null>
}

/** Whether any request of the view went through the fair-share queue (else the wait chart is empty). */
export const anyQueued = (res: UsageSeriesResponse) => res.queue_wait.queued.some((n) => n > 0)

/**
 * Lines for the chart: tokens (prompt + completion) per series, or requests and errors (errors summed over
 * every series, as one line), or the queue wait p50 and p95 over every series in seconds. The busiest `max`
 * series are drawn; the rest are summed as "others".
 */
export function chartSeries(res: UsageSeriesResponse, metric: UsageMetric, max = 6): ChartLine[] {
  if (metric === 'wait') {
    const s = (v: number | null) => (v === null ? null : v / 1000)
    return [
      { label: 'p50 wait', values: res.queue_wait.p50_ms.map(s) },
      { label: 'p95 wait', values: res.queue_wait.p95_ms.map(s) },
    ]
  }
  const n = res.buckets.length
  const order = topRows(res).map((r) => r.key)
  const used = res.series
    .filter((s) => order.includes(s.key))
    .sort((a, b) => order.indexOf(a.key) - order.indexOf(b.key))
  const pick = (s: (typeof res.series)[number]) =>
    metric === 'tokens' ? s.prompt_tokens.map((p, i) => p + (s.completion_tokens[i] ?? 0)) : s.requests
  const lines = used.slice(0, max).map((s) => ({ label: s.label, values: pick(s) }))
  const rest = used.slice(max)
  if (rest.length) {
    const values = Array.from({ length: n }, (_, i) => sum(rest.map((s) => pick(s)[i] ?? 0)))
    lines.push({ label: `${rest.length} other${rest.length === 1 ? '' : 's'}`, values })
  }
  if (metric === 'requests' && used.length) {
    lines.push({
      label: 'errors (all)',
      values: Array.from({ length: n }, (_, i) => sum(used.map((s) => s.errors[i] ?? 0))),
    })
  }
  return lines
}

export const isEmpty = (res: UsageSeriesResponse | null) => !res || topRows(res).length === 0

/**
 * An x-axis label in the host's zone: `14:00` for hour buckets (with the date at midnight or on the first
 * tick), `1 Dec` for day buckets and for week buckets (the week's Monday). The browser's own zone plays no
 * part.
 */
export function axisLabel(ms: number, zone: string, bucket: UsageBucket, first = false): string {
  const part = (o: Intl.DateTimeFormatOptions) =>
    new Intl.DateTimeFormat('en-GB', { timeZone: zone, ...o }).format(ms)
  const date = part({ day: 'numeric', month: 'short' })
  if (bucket !== 'hour') return date
  const time = part({ hour: '2-digit', minute: '2-digit', hourCycle: 'h23' })
  return first || time === '00:00' ? `${time}\n${date}` : time
}

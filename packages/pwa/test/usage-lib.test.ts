import type { UsageSeriesResponse } from '@sharedllm/core/protocol'
import { describe, expect, it } from 'vitest'
import { anyQueued, axisLabel, chartSeries, defaultBucket, isEmpty, topRows } from '../src/lib/usage'

const res = (series: UsageSeriesResponse['series']): UsageSeriesResponse => ({
  group: 'device',
  bucket: 'hour',
  from: 0,
  to: 3 * 3_600_000,
  time_zone: 'Europe/Berlin',
  buckets: [0, 3_600_000, 7_200_000],
  series,
  queue_wait: { queued: [0, 0, 0], p50_ms: [null, null, null], p95_ms: [null, null, null] },
})
const s = (key: string, prompt: number[], completion: number[], requests: number[], errors = [0, 0, 0]) => ({
  key,
  label: key || 'Host owner',
  prompt_tokens: prompt,
  completion_tokens: completion,
  requests,
  errors,
  queue_wait_p50_ms: [null, null, null],
  queue_wait_p95_ms: [null, null, null],
})

describe('usage views', () => {
  it('sums each series for the top table, most tokens first, without idle ones', () => {
    const r = res([
      s('a', [1, 2, 3], [1, 1, 1], [1, 1, 1]),
      s('b', [10, 0, 0], [5, 0, 0], [1, 0, 0], [1, 0, 0]),
      s('c', [0, 0, 0], [0, 0, 0], [0, 0, 0]),
    ])
    expect(topRows(r).map((x) => [x.key, x.tokens, x.requests, x.errors])).toEqual([
      ['b', 15, 1, 1],
      ['a', 9, 3, 0],
    ])
    expect(isEmpty(r)).toBe(false)
    expect(isEmpty(res([s('c', [0, 0, 0], [0, 0, 0], [0, 0, 0])]))).toBe(true)
  })

  it('draws the busiest series, the rest as others, and errors as one line', () => {
    const r = res([
      s('a', [1, 0, 0], [0, 0, 0], [1, 0, 0]),
      s('b', [0, 5, 0], [0, 5, 0], [0, 2, 0], [0, 1, 0]),
      s('c', [0, 0, 2], [0, 0, 0], [0, 0, 1]),
    ])
    expect(chartSeries(r, 'tokens', 2)).toEqual([
      { label: 'b', values: [0, 10, 0] },
      { label: 'c', values: [0, 0, 2] },
      { label: '1 other', values: [1, 0, 0] },
    ])
    expect(chartSeries(r, 'requests').at(-1)).toEqual({ label: 'errors (all)', values: [0, 1, 0] })
    expect(defaultBucket('30d')).toBe('day')
    expect(defaultBucket('24h')).toBe('hour')
  })

  it('the wait chart: p50 and p95 over every series in seconds, gaps where nothing was queued', () => {
    const r = res([s('a', [1, 0, 0], [0, 0, 0], [1, 0, 2])])
    expect(anyQueued(r)).toBe(false)
    r.queue_wait = { queued: [1, 0, 2], p50_ms: [0, null, 1500], p95_ms: [0, null, 9000] }
    expect(anyQueued(r)).toBe(true)
    expect(chartSeries(r, 'wait')).toEqual([
      { label: 'p50 wait', values: [0, null, 1.5] },
      { label: 'p95 wait', values: [0, null, 9] },
    ])
  })

  it('labels the time axis in the host’s zone, across a daylight-saving change', () => {
    // 2026-03-29 01:00 UTC: Berlin jumps from 02:00 to 03:00 (UTC+1 to UTC+2).
    const before = Date.UTC(2026, 2, 29, 0, 0)
    const after = Date.UTC(2026, 2, 29, 1, 0)
    expect(axisLabel(before, 'Europe/Berlin', 'hour')).toBe('01:00')
    expect(axisLabel(after, 'Europe/Berlin', 'hour')).toBe('03:00')
    expect(axisLabel(Date.UTC(2026, 2, 28, 23, 0), 'Europe/Berlin', 'hour')).toBe('00:00\n29 Mar')
    expect(axisLabel(Date.UTC(2026, 2, 28, 23, 0), 'UTC', 'day')).toBe('28 Mar')
    expect(axisLabel(Date.UTC(2026, 2, 28, 23, 0), 'America/New_York', 'hour', true)).toBe('19:00\n28 Mar')
  })
})

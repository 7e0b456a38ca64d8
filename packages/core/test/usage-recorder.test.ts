import fc from 'fast-check'
import { describe, expect, test, vi } from 'vitest'
import {
  QUEUE_WAIT_BOUNDS_MS,
  effectiveBudgets,
  isoLocal,
  openStore,
  SharedLLMError,
  type Store,
  type UsageEvent,
  UsageRecorder,
  UsageService,
  VirtualClock,
  waitQuantile,
} from '../src/index'
import { startHub, tempDir } from './helpers'

const BERLIN = 'Europe/Berlin'
const Z = (iso: string) => Date.parse(iso)
const H = 3_600_000

async function store(): Promise<Store> {
  return openStore(tempDir())
}

const ev = (over: Partial<UsageEvent> = {}): UsageEvent => ({
  device_id: 'dev-a',
  model: 'llama3.2:3b',
  endpoint: '/api/chat',
  prompt_tokens: 10,
  completion_tokens: 20,
  duration_ms: 100,
  status: 200,
  ...over,
})

async function rollups(s: Store) {
  return s
    .knex('usage_hourly')
    .select('device_id', 'model', 'hour_start', 'requests', 'errors', 'prompt_tokens', 'completion_tokens')
    .orderBy(['hour_start', 'device_id', 'model'])
}

async function rejection(p: Promise<unknown>): Promise<SharedLLMError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  )
  if (err instanceof SharedLLMError) return err
  throw new Error(`expected a SharedLLMError, got ${String(err)}`)
}

describe('batch recorder', () => {
  test('rollups per device × model × local hour, merged across flushes, raw rows alongside', async () => {
    const s = await store()
    const clock = new VirtualClock(Z('2026-12-01T10:15:00Z'))
    const r = new UsageRecorder({ db: () => s.knex, clock, timeZone: () => BERLIN })
    r.record(ev())
    r.record(ev({ at: Z('2026-12-01T10:59:59Z') }))
    r.record(ev({ at: Z('2026-12-01T11:00:00Z'), status: 500, completion_tokens: 0 }))
    r.record(ev({ device_id: 'dev-b', model: null }))
    r.record(ev({ device_id: null }))
    expect(await s.knex('usage').count({ n: '*' })).toEqual([{ n: 0 }])
    await r.flush()
    r.record(ev({ prompt_tokens: 1, completion_tokens: 1 }))
    await r.flush()
    const ten = Z('2026-12-01T10:00:00Z')
    expect(await rollups(s)).toEqual([
      {
        device_id: '',
        model: 'llama3.2:3b',
        hour_start: ten,
        requests: 1,
        errors: 0,
        prompt_tokens: 10,
        completion_tokens: 20,
      },
      {
        device_id: 'dev-a',
        model: 'llama3.2:3b',
        hour_start: ten,
        requests: 3,
        errors: 0,
        prompt_tokens: 21,
        completion_tokens: 41,
      },
      {
        device_id: 'dev-b',
        model: '',
        hour_start: ten,
        requests: 1,
        errors: 0,
        prompt_tokens: 10,
        completion_tokens: 20,
      },
      {
        device_id: 'dev-a',
        model: 'llama3.2:3b',
        hour_start: ten + H,
        requests: 1,
        errors: 1,
        prompt_tokens: 10,
        completion_tokens: 0,
      },
    ])
    expect(await s.knex('usage').count({ n: '*' })).toEqual([{ n: 6 }])
    expect(r.stats).toMatchObject({ recorded: 6, flushed: 6, dropped: 0, failures: 0 })
    await s.close()
  })

  test('the timer flushes within a second, and stop() writes the rest', async () => {
    const s = await store()
    const clock = new VirtualClock(Z('2026-12-01T10:00:00Z'))
    const r = new UsageRecorder({ db: () => s.knex, clock, timeZone: () => BERLIN })
    r.start()
    r.record(ev())
    clock.advance(499)
    expect(r.stats.batches).toBe(0)
    clock.advance(1)
    await vi.waitFor(() => expect(r.stats.batches).toBe(1))
    r.record(ev())
    await r.stop()
    expect(r.stats.flushed).toBe(2)
    expect(clock.pending).toBe(0)
    expect(await s.knex('usage').count({ n: '*' })).toEqual([{ n: 2 }])
    // A request that ends during shutdown, after stop(), is still written.
    r.record(ev())
    await vi.waitFor(async () => expect(await s.knex('usage').count({ n: '*' })).toEqual([{ n: 3 }]))
    await s.close()
  })

  test('a full buffer flushes early; past twice its size raw rows are dropped but the rollups stay exact', async () => {
    const s = await store()
    const r = new UsageRecorder({
      db: () => s.knex,
      clock: new VirtualClock(Z('2026-12-01T10:00:00Z')),
      maxBuffered: 5,
    })
    for (let i = 0; i < 20; i++) r.record(ev({ endpoint: `/api/chat#${i}` }))
    await r.stop()
    expect(r.stats).toMatchObject({ recorded: 20, flushed: 15, dropped: 5 })
    const [row] = await rollups(s)
    expect(row).toMatchObject({ requests: 20, prompt_tokens: 200 })
    await s.close()
  })

  test('a failed flush keeps the batch, reports it, and the next flush writes it once', async () => {
    const s = await store()
    let broken = true
    const errors: string[] = []
    const r = new UsageRecorder({
      db: () => {
        if (broken) throw new Error('database is locked')
        return s.knex
      },
      clock: new VirtualClock(Z('2026-12-01T10:00:00Z')),
      onError: (m) => errors.push(m),
    })
    r.record(ev({ queue_wait_ms: 40 }))
    await r.flush()
    expect(errors).toEqual(['usage flush failed (1 rows kept for the next try): database is locked'])
    r.record(ev({ queue_wait_ms: 40 }))
    broken = false
    await r.flush()
    expect((await rollups(s))[0]).toMatchObject({ requests: 2, prompt_tokens: 20 })
    expect(await s.knex('usage_hourly').first('queued', 'queue_wait_le_50', 'queue_wait_ms')).toEqual({
      queued: 2,
      queue_wait_le_50: 2,
      queue_wait_ms: 80,
    })
    expect(await s.knex('usage').count({ n: '*' })).toEqual([{ n: 2 }])
    await s.close()
  })

  test('garbage in an event is cleaned, never thrown', async () => {
    const s = await store()
    const r = new UsageRecorder({ db: () => s.knex, clock: new VirtualClock(Z('2026-12-01T10:00:00Z')) })
    r.record(
      ev({
        prompt_tokens: -5,
        completion_tokens: Number.NaN,
        duration_ms: Number.POSITIVE_INFINITY,
        status: 1.5,
      }),
    )
    await r.flush()
    expect((await rollups(s))[0]).toMatchObject({
      requests: 1,
      errors: 1,
      prompt_tokens: 0,
      completion_tokens: 0,
    })
    await s.close()
  })

  test('retention: raw rows past usage_raw_retention_days and rollups past usage_rollup_retention_days go', async () => {
    const s = await store()
    const now = Z('2026-12-01T10:00:00Z')
    const clock = new VirtualClock(now)
    const r = new UsageRecorder({
      db: () => s.knex,
      clock,
      timeZone: () => 'UTC',
      retention: () => ({ rawDays: 30, rollupDays: 400 }),
    })
    const day = 24 * H
    for (const age of [31 * day, 29 * day, 401 * day, 399 * day]) r.record(ev({ at: now - age }))
    await r.flush()
    expect(await r.prune()).toEqual({ raw: 3, rollups: 1 })
    expect(
      (await s.knex('usage').select('at')).map((x: { at: number }) => (now - x.at) / day).sort(),
    ).toEqual([29])
    expect((await rollups(s)).length).toBe(3)
    await s.close()
  })
})

describe('quotas and hours against the store', () => {
  test('budgets count flushed and still-buffered tokens; a request that crosses the budget is recorded whole', async () => {
    const s = await store()
    const clock = new VirtualClock(Z('2026-12-02T15:00:00Z'))
    const recorder = new UsageRecorder({ db: () => s.knex, clock, timeZone: () => BERLIN })
    const usage = new UsageService({ db: () => s.knex, recorder, clock, timeZone: () => BERLIN })
    const budgets = effectiveBudgets(
      { token_budget_day: 1000, token_budget_week: null, token_budget_month: null },
      { token_budget_day: 100, token_budget_week: null, token_budget_month: null },
    )
    // Yesterday's usage does not count today.
    recorder.record(ev({ at: Z('2026-12-01T22:59:59Z'), prompt_tokens: 500, completion_tokens: 500 }))
    await recorder.flush()
    recorder.record(ev({ prompt_tokens: 30, completion_tokens: 30 }))
    expect((await usage.checkQuota('dev-a', budgets)).windows[0]).toMatchObject({ used: 60, remaining: 40 })
    // Admitted at 60 of 100; it streams 90 tokens and finishes: the whole answer counts.
    recorder.record(ev({ prompt_tokens: 10, completion_tokens: 80 }))
    const err = await rejection(usage.checkQuota('dev-a', budgets))
    expect(err.status).toBe(429)
    expect(err.details).toMatchObject({ window: 'day', used: 150, budget: 100, retry_after_s: 8 * 3600 })
    await recorder.flush()
    expect((await usage.quota('dev-a', budgets)).windows[0]).toMatchObject({ used: 150, remaining: 0 })
    // Another device has its own count.
    expect((await usage.checkQuota('dev-b', budgets)).windows[0]?.used).toBe(0)
    // At the reset (Thursday 00:00 Berlin) it may go again; a second before, not.
    const reset = Z('2026-12-02T23:00:00Z')
    expect((await rejection(usage.checkQuota('dev-a', budgets, reset - 1000))).details).toMatchObject({
      retry_after_s: 1,
    })
    expect((await usage.checkQuota('dev-a', budgets, reset)).windows[0]).toMatchObject({ used: 0 })
    await s.close()
  })

  test('weekly and monthly budgets across the spring DST change (New York)', async () => {
    const s = await store()
    const NY = 'America/New_York'
    const clock = new VirtualClock(Z('2026-03-09T12:00:00Z')) // Monday after the change
    const recorder = new UsageRecorder({ db: () => s.knex, clock, timeZone: () => NY })
    const usage = new UsageService({ db: () => s.knex, recorder, clock, timeZone: () => NY })
    recorder.record(ev({ at: Z('2026-03-09T03:59:59Z'), prompt_tokens: 1000, completion_tokens: 0 })) // Sun 23:59:59 EDT
    recorder.record(ev({ at: Z('2026-03-09T04:00:00Z'), prompt_tokens: 7, completion_tokens: 0 })) // Mon 00:00 EDT
    recorder.record(ev({ at: Z('2026-03-01T05:00:00Z'), prompt_tokens: 100, completion_tokens: 0 })) // Mar 1 00:00 EST
    recorder.record(ev({ at: Z('2026-03-01T04:59:59Z'), prompt_tokens: 5000, completion_tokens: 0 })) // Feb 28
    await recorder.flush()
    const q = await usage.quota('dev-a', { day: null, week: 10, month: 2000 })
    expect(q.windows.map((w) => [w.window, w.used, isoLocal(w.resets_at, NY)])).toEqual([
      ['day', 7, '2026-03-10T00:00:00-04:00'],
      ['week', 7, '2026-03-16T00:00:00-04:00'],
      ['month', 1107, '2026-04-01T00:00:00-04:00'],
    ])
    await s.close()
  })

  test('allowed hours with an owner grant stored per device', async () => {
    const hub = await startHub()
    const d = await hub.devices.add({ name: 'tablet', ip: '192.168.1.9' })
    const clock = new VirtualClock(Z('2026-12-05T20:30:00Z')) // Saturday 21:30 Berlin
    const usage = new UsageService({ db: () => hub.db, clock, timeZone: () => BERLIN })
    const schedule = [{ days: [0, 6], from: '09:00', to: '21:00' }]
    const err = await rejection(usage.checkHours(d.id, schedule))
    expect(err.status).toBe(403)
    expect(err.message).toMatch(/opens Sun 09:00/)
    const until = await usage.grantOneMoreHour(d.id, schedule, 'admin')
    expect(until).toBe(clock.now() + H)
    expect(await usage.checkHours(d.id, schedule)).toMatchObject({ open: true, granted_until: until })
    clock.advance(H - 1000)
    expect((await usage.hours(d.id, schedule)).open).toBe(true)
    clock.advance(1000)
    expect((await usage.hours(d.id, schedule)).open).toBe(false)
    // Another device is not affected by this one's grant.
    const other = await hub.devices.add({ name: 'phone', ip: '192.168.1.10' })
    expect((await usage.hours(other.id, schedule)).open).toBe(false)
  })
})

describe('admission and the limits a device sees', () => {
  test('admit: hours first (403), then budgets (429); the device overrides its role', async () => {
    const hub = await startHub()
    const role = await hub.roles.update('role-guest', {
      token_budget_day: 100,
      allowed_hours: [{ days: [1, 2, 3, 4, 5], from: '16:00', to: '20:00' }],
    })
    const d = await hub.devices.add({ name: 'tablet', ip: '192.168.1.9' })
    await hub.devices.approve(d.id, 'role-guest')
    const clock = new VirtualClock(Z('2026-12-02T14:00:00Z')) // Wednesday 15:00 Berlin
    const recorder = new UsageRecorder({ db: () => hub.db, clock, timeZone: () => BERLIN })
    const usage = new UsageService({ db: () => hub.db, recorder, clock, timeZone: () => BERLIN })
    let device = await hub.devices.get(d.id)
    expect((await rejection(usage.admit(device, role))).status).toBe(403)
    clock.advance(H) // 16:00
    expect((await usage.admit(device, role)).hours.open).toBe(true)
    recorder.record(ev({ device_id: d.id, prompt_tokens: 50, completion_tokens: 50 }))
    expect((await rejection(usage.admit(device, role))).status).toBe(429)
    device = await hub.devices.setLimits(d.id, { token_budget_day: 500, allowed_hours: [] })
    expect((await rejection(usage.admit(device, role))).status).toBe(403)
    device = await hub.devices.setLimits(d.id, { allowed_hours: null })
    const ok = await usage.admit(device, role)
    expect(ok.quota.windows[0]).toMatchObject({ budget: 500, used: 100, remaining: 400 })
    const view = await usage.limits(device, role)
    expect(view).toEqual({
      time_zone: BERLIN,
      quota: [
        { window: 'day', budget: 500, used: 100, remaining: 400, resets_at: Z('2026-12-02T23:00:00Z') },
        { window: 'week', budget: null, used: 100, remaining: null, resets_at: Z('2026-12-06T23:00:00Z') },
        { window: 'month', budget: null, used: 100, remaining: null, resets_at: Z('2026-12-31T23:00:00Z') },
      ],
      hours: {
        open: true,
        always: false,
        next_change: Z('2026-12-02T19:00:00Z'),
        next_open: null,
        open_until: Z('2026-12-02T19:00:00Z'),
        granted_until: null,
      },
    })
  })
})

describe('series and CSV', () => {
  async function seeded() {
    const hub = await startHub()
    const a = await hub.devices.add({ name: 'Anna’s tablet', ip: '192.168.1.20' })
    const b = await hub.devices.add({ name: '=HYPERLINK("x")', ip: '192.168.1.21' })
    const clock = new VirtualClock(Z('2026-10-26T12:00:00Z'))
    const recorder = new UsageRecorder({ db: () => hub.db, clock, timeZone: () => BERLIN })
    const usage = new UsageService({ db: () => hub.db, recorder, clock, timeZone: () => BERLIN })
    // Sunday 25 October 2026 (25 hours in Berlin): one request in the first and one in the repeated hour.
    recorder.record(ev({ device_id: a.id, model: 'llama3.2:3b', at: Z('2026-10-24T22:10:00Z') })) // 00:10 CEST
    recorder.record(ev({ device_id: a.id, model: 'qwen2.5:7b', at: Z('2026-10-25T00:30:00Z') })) // 02:30 CEST
    recorder.record(ev({ device_id: b.id, model: 'qwen2.5:7b', at: Z('2026-10-25T01:30:00Z'), status: 429 })) // 02:30 CET
    recorder.record(ev({ device_id: a.id, model: 'llama3.2:3b', at: Z('2026-10-25T23:30:00Z') })) // Mon 00:30 CET
    await recorder.flush()
    return { hub, usage, a, b }
  }

  test('hour buckets: every local hour of the 25-hour day, aligned across devices', async () => {
    const { usage, a, b } = await seeded()
    const view = await usage.series({
      group: 'device',
      bucket: 'hour',
      from: '2026-10-24T22:00:00Z',
      to: '2026-10-25T23:00:00Z',
    })
    expect(view.buckets).toHaveLength(25)
    expect(view.time_zone).toBe(BERLIN)
    expect(view.series.map((s) => [s.key, s.label])).toEqual([
      [b.id, '=HYPERLINK("x")'],
      [a.id, 'Anna’s tablet'],
    ])
    const anna = view.series[1]
    expect(anna?.requests.reduce((x, y) => x + y, 0)).toBe(2)
    expect(anna?.requests[0]).toBe(1)
    expect(anna?.requests[2]).toBe(1) // 02:00 CEST
    expect(view.series[0]?.requests[3]).toBe(1) // 02:00 CET, the repeated hour
    expect(view.series[0]?.errors[3]).toBe(1)
  })

  test('day buckets by model follow local midnight; a device sees only its own', async () => {
    const { usage, a } = await seeded()
    const view = await usage.series({
      group: 'model',
      bucket: 'day',
      from: Z('2026-10-24T22:00:00Z'),
      to: Z('2026-10-26T23:00:00Z'),
    })
    expect(view.buckets.map((t) => isoLocal(t, BERLIN))).toEqual([
      '2026-10-25T00:00:00+02:00',
      '2026-10-26T00:00:00+01:00',
    ])
    expect(view.series.map((s) => [s.key, s.requests])).toEqual([
      ['llama3.2:3b', [1, 1]],
      ['qwen2.5:7b', [2, 0]],
    ])
    const own = await usage.series({ group: 'model', bucket: 'day', from: Z('2026-10-24T22:00:00Z') }, a.id)
    expect(own.series.map((s) => [s.key, s.requests.reduce((x, y) => x + y, 0)])).toEqual([
      ['llama3.2:3b', 2],
      ['qwen2.5:7b', 1],
    ])
  })

  test('week buckets start on Monday’s local midnight; only the range’s hours count, whatever the bucket', async () => {
    const { usage } = await seeded()
    // Sat 24 Oct 22:00 UTC = Sun 25 Oct 00:00 CEST; the week of Mon 19 Oct, then the week of Mon 26 Oct.
    const view = await usage.series({
      group: 'model',
      bucket: 'week',
      from: Z('2026-10-24T22:00:00Z'),
      to: Z('2026-10-26T23:00:00Z'),
    })
    expect(view.buckets.map((t) => isoLocal(t, BERLIN))).toEqual([
      '2026-10-19T00:00:00+02:00',
      '2026-10-26T00:00:00+01:00',
    ])
    expect(view.series.map((s) => [s.key, s.requests])).toEqual([
      ['llama3.2:3b', [1, 1]],
      ['qwen2.5:7b', [2, 0]],
    ])
    // From 01:00 CEST on: the 00:10 request is outside the range, in a day or a week bucket alike.
    for (const bucket of ['hour', 'day', 'week'] as const) {
      const later = await usage.series({
        group: 'model',
        bucket,
        from: Z('2026-10-24T23:00:00Z'),
        to: Z('2026-10-26T23:00:00Z'),
      })
      const llama = later.series.find((s) => s.key === 'llama3.2:3b')
      expect([bucket, llama?.requests.reduce((a, b) => a + b, 0)]).toEqual([bucket, 1])
    }
  })

  test('CSV of the same view; a name that looks like a formula is defused', async () => {
    const { usage, b } = await seeded()
    const csv = await usage.csv({
      group: 'device',
      bucket: 'day',
      from: '2026-10-24T22:00:00Z',
      to: '2026-10-26T23:00:00Z',
    })
    const lines = csv.trimEnd().split('\r\n')
    expect(lines[0]).toBe(
      'bucket_start_utc,bucket_start_local,device,device_label,requests,errors,prompt_tokens,completion_tokens,queue_wait_p50_ms,queue_wait_p95_ms',
    )
    // Nothing of that day went through the queue: the wait cells are empty, not 0.
    expect(lines).toContain(
      `2026-10-24T22:00:00.000Z,2026-10-25T00:00:00+02:00,${b.id},"'=HYPERLINK(""x"")",1,1,10,20,,`,
    )
    expect(lines).toHaveLength(4)
  })

  test('queue wait p50/p95 per bucket: per series, and merged over every series; unqueued requests do not count', async () => {
    const hub = await startHub()
    const a = await hub.devices.add({ name: 'Anna', ip: '192.168.1.20' })
    const b = await hub.devices.add({ name: 'Ben', ip: '192.168.1.21' })
    const clock = new VirtualClock(Z('2026-12-01T12:00:00Z'))
    const recorder = new UsageRecorder({ db: () => hub.db, clock, timeZone: () => BERLIN })
    const usage = new UsageService({ db: () => hub.db, recorder, clock, timeZone: () => BERLIN })
    const at = Z('2026-12-01T10:20:00Z') // 11:00–12:00 in Berlin
    // Anna: 10 requests that started at once; Ben: 10 that waited 2 s … 20 s; a routed request (no wait).
    for (let i = 0; i < 10; i++) recorder.record(ev({ device_id: a.id, at, queue_wait_ms: 0 }))
    for (let i = 1; i <= 10; i++) recorder.record(ev({ device_id: b.id, at, queue_wait_ms: i * 2000 }))
    recorder.record(ev({ device_id: b.id, at, via: 'studio-pc' }))
    await recorder.flush()
    const view = await usage.series({
      group: 'device',
      bucket: 'hour',
      from: '2026-12-01T10:00:00Z',
      to: '2026-12-01T12:00:00Z',
    })
    expect(view.buckets).toHaveLength(2)
    const [anna, ben] = view.series
    expect(anna?.queue_wait_p50_ms).toEqual([0, null])
    expect(anna?.queue_wait_p95_ms).toEqual([0, null])
    // Ben's waits 2,4,…,20 s: the median (rank 5, 10 s) falls in (5 s, 10 s], the p95 in (10 s, 30 s].
    expect(ben?.requests[0]).toBe(11)
    const [p50, p95] = [ben?.queue_wait_p50_ms[0] ?? -1, ben?.queue_wait_p95_ms[0] ?? -1]
    expect(p50).toBeGreaterThan(5000)
    expect(p50).toBeLessThanOrEqual(10_000)
    expect(p95).toBeGreaterThan(10_000)
    expect(p95).toBeLessThanOrEqual(30_000)
    // Over both: 20 queued, half of them at 0 → the median is 0 … the first of Ben's; p95 is Ben's tail.
    expect(view.queue_wait.queued).toEqual([20, 0])
    expect(view.queue_wait.p50_ms[0]).toBe(0)
    expect(view.queue_wait.p95_ms[0]).toBeGreaterThan(10_000)
    expect(view.queue_wait.p50_ms[1]).toBeNull()
    const csv = await usage.csv({
      group: 'device',
      bucket: 'hour',
      from: '2026-12-01T10:00:00Z',
      to: '2026-12-01T12:00:00Z',
    })
    expect(csv).toContain(`,${b.id},Ben,11,0,110,220,${p50},${p95}\r\n`)
  })

  test('a bad query is a 400 naming the field', async () => {
    const { usage } = await seeded()
    for (const [q, message] of [
      [{ group: 'role' }, /^group: /],
      [{ bucket: 'month' }, /^bucket: /],
      [{ from: 'yesterday' }, /^from: must be a time/],
      // Past what Date can hold, or what a week's window needs around it: a 400, never Intl's RangeError.
      [{ to: '99999999999999999999' }, /^to: must be a time between 1970 and 9999/],
      [{ to: 8_639_999_999_999_999, bucket: 'week' }, /^to: must be a time between 1970 and 9999/],
      [{ from: '2026-10-02T00:00:00Z', to: '2026-10-01T00:00:00Z' }, /^from: must be before to/],
      [
        { bucket: 'hour', from: '2026-01-01T00:00:00Z', to: '2026-10-01T00:00:00Z' },
        /^from: a range of at most 31 days/,
      ],
    ] as Array<[object, RegExp]>) {
      const err = await rejection(usage.series(q))
      expect(err.code).toBe('VALIDATION')
      expect(err.message).toMatch(message)
    }
  })

  test('metrics lines: remaining tokens per device and window, tokens per device, model and kind', async () => {
    const { usage, a } = await seeded()
    const lines = await usage.metricsLines([
      { id: a.id, label: 'anna', budgets: { day: 100, week: null, month: null } },
    ])
    expect(lines).toContain('sharedllm_quota_remaining_tokens{device="anna",window="day"} 70')
    expect(lines).toContain('sharedllm_usage_tokens{device="anna",kind="completion",model="llama3.2:3b"} 40')
    expect(lines.filter((l) => l.startsWith('sharedllm_quota_remaining_tokens{'))).toHaveLength(1)
  })
})

describe('queue-wait quantiles from the hourly histogram', () => {
  const bucketOf = (ms: number) => {
    const i = QUEUE_WAIT_BOUNDS_MS.findIndex((b) => ms <= b)
    return i === -1 ? QUEUE_WAIT_BOUNDS_MS.length : i
  }
  const histogram = (waits: number[]) => {
    const h = Array.from({ length: QUEUE_WAIT_BOUNDS_MS.length + 1 }, () => 0)
    for (const w of waits) h[bucketOf(w)] = (h[bucketOf(w)] ?? 0) + 1
    return h
  }

  test('empty is null; no wait is 0; the open last bucket is its lower bound', () => {
    expect(waitQuantile(histogram([]), 0.5)).toBeNull()
    expect(waitQuantile(histogram([0, 0, 0]), 0.95)).toBe(0)
    expect(waitQuantile(histogram([900_000]), 0.5)).toBe(300_000)
    // Four waits in (100, 250]: the median is half-way through the bucket.
    expect(waitQuantile(histogram([120, 130, 140, 150]), 0.5)).toBe(175)
  })

  test('the estimate always lies in the bucket of the true (nearest-rank) quantile', () => {
    fc.assert(
      fc.property(
        fc.array(fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 400_000 })), {
          minLength: 1,
          maxLength: 200,
        }),
        fc.constantFrom(0.5, 0.95),
        (waits, q) => {
          const sorted = [...waits].sort((x, y) => x - y)
          const truth = sorted[Math.max(0, Math.ceil(q * sorted.length) - 1)] ?? 0
          const i = bucketOf(truth)
          const lower = i === 0 ? 0 : (QUEUE_WAIT_BOUNDS_MS[i - 1] ?? 0)
          const upper = QUEUE_WAIT_BOUNDS_MS[i] ?? Number.POSITIVE_INFINITY
          const est = waitQuantile(histogram(waits), q) ?? -1
          expect(est).toBeGreaterThanOrEqual(lower)
          expect(est).toBeLessThanOrEqual(upper === Number.POSITIVE_INFINITY ? lower : upper)
        },
      ),
      { numRuns: 500 },
    )
  })
})

import fc from 'fast-check'
import { describe, expect, test } from 'vitest'
import {
  type AllowedHours,
  checkHours,
  checkQuota,
  effectiveBudgets,
  hoursStatus,
  instantOf,
  isoLocal,
  oneMoreHour,
  allowedHoursSchema,
  quotaCrossings,
  quotaStatus,
  SharedLLMError,
  startOfHour,
  windowAt,
} from '../src/index'

const BERLIN = 'Europe/Berlin'
const NY = 'America/New_York'
const Z = (iso: string) => Date.parse(iso)
const H = 3_600_000

function thrown(fn: () => unknown): SharedLLMError {
  try {
    fn()
  } catch (err) {
    if (err instanceof SharedLLMError) return err
    throw err
  }
  throw new Error('expected a refusal')
}

describe('wall-clock arithmetic in a real zone', () => {
  test('local midnight and the 23- and 25-hour days of the DST changes (Berlin 2026)', () => {
    // Spring forward: Sunday 29 March 2026, 02:00 CET → 03:00 CEST.
    const spring = windowAt('day', Z('2026-03-29T12:00:00Z'), BERLIN)
    expect(spring.map((t) => new Date(t).toISOString())).toEqual([
      '2026-03-28T23:00:00.000Z',
      '2026-03-29T22:00:00.000Z',
    ])
    expect((spring[1] - spring[0]) / H).toBe(23)
    // Fall back: Sunday 25 October 2026, 03:00 CEST → 02:00 CET.
    const fall = windowAt('day', Z('2026-10-25T12:00:00Z'), BERLIN)
    expect((fall[1] - fall[0]) / H).toBe(25)
    expect(isoLocal(fall[0], BERLIN)).toBe('2026-10-25T00:00:00+02:00')
    expect(isoLocal(fall[1], BERLIN)).toBe('2026-10-26T00:00:00+01:00')
  })

  test('weeks start on Monday; months on the 1st; both across DST (Berlin and New York)', () => {
    const week = windowAt('week', Z('2026-03-29T20:00:00Z'), BERLIN) // Sunday evening
    expect(isoLocal(week[0], BERLIN)).toBe('2026-03-23T00:00:00+01:00')
    expect(isoLocal(week[1], BERLIN)).toBe('2026-03-30T00:00:00+02:00')
    expect((week[1] - week[0]) / H).toBe(7 * 24 - 1)
    const month = windowAt('month', Z('2026-11-15T12:00:00Z'), NY)
    expect(isoLocal(month[0], NY)).toBe('2026-11-01T00:00:00-04:00')
    expect(isoLocal(month[1], NY)).toBe('2026-12-01T00:00:00-05:00')
    const december = windowAt('month', Z('2026-12-31T23:30:00Z'), BERLIN) // already January in Berlin
    expect(isoLocal(december[0], BERLIN)).toBe('2027-01-01T00:00:00+01:00')
  })

  test('a skipped wall time is the instant the clock jumps past it; a repeated one is its first occurrence', () => {
    expect(isoLocal(instantOf({ year: 2026, month: 3, day: 29, hour: 2, minute: 30 }, BERLIN), BERLIN)).toBe(
      '2026-03-29T03:00:00+02:00',
    )
    expect(isoLocal(instantOf({ year: 2026, month: 3, day: 8, hour: 2, minute: 59 }, NY), NY)).toBe(
      '2026-03-08T03:00:00-04:00',
    )
    expect(
      new Date(instantOf({ year: 2026, month: 10, day: 25, hour: 2, minute: 30 }, BERLIN)).toISOString(),
    ).toBe('2026-10-25T00:30:00.000Z')
    expect(isoLocal(instantOf({ year: 2026, month: 11, day: 1, hour: 1, minute: 30 }, NY), NY)).toBe(
      '2026-11-01T01:30:00-04:00',
    )
  })

  test('hour buckets follow local hours, also in a zone offset by :30', () => {
    expect(new Date(startOfHour(Z('2026-06-01T10:59:59Z'), BERLIN)).toISOString()).toBe(
      '2026-06-01T10:00:00.000Z',
    )
    expect(new Date(startOfHour(Z('2026-06-01T10:59:59Z'), 'Asia/Kolkata')).toISOString()).toBe(
      '2026-06-01T10:30:00.000Z',
    )
    expect(new Date(startOfHour(Z('2026-06-01T10:20:00Z'), 'Asia/Kolkata')).toISOString()).toBe(
      '2026-06-01T09:30:00.000Z',
    )
  })
})

describe('token budgets', () => {
  const budgets = { day: 1000, week: 5000, month: null }

  test('device values override the role, each window on its own', () => {
    expect(
      effectiveBudgets(
        { token_budget_day: 100, token_budget_week: 500, token_budget_month: 900 },
        { token_budget_day: 50, token_budget_week: null, token_budget_month: null },
      ),
    ).toEqual({ day: 50, week: 500, month: 900 })
    expect(effectiveBudgets(null, null)).toEqual({ day: null, week: null, month: null })
  })

  test('remaining per window with its reset; over budget is a 429 naming the budget and the reset', () => {
    const now = Z('2026-12-02T15:00:00Z') // Wednesday 16:00 in Berlin
    const used = (from: number) => (from >= Z('2026-12-01T23:00:00Z') ? 1000 : 1200)
    const status = quotaStatus(budgets, used, now, BERLIN)
    expect(status.windows.map((w) => [w.window, w.used, w.remaining, isoLocal(w.resets_at, BERLIN)])).toEqual(
      [
        ['day', 1000, 0, '2026-12-03T00:00:00+01:00'],
        ['week', 1200, 3800, '2026-12-07T00:00:00+01:00'],
        ['month', 1200, null, '2027-01-01T00:00:00+01:00'],
      ],
    )
    const err = thrown(() => checkQuota(budgets, used, now, BERLIN))
    expect(err.status).toBe(429)
    expect(err.message).toBe(
      "this device's daily token budget (1000 tokens) is used up; it resets Thu 00:00 (2026-12-03T00:00:00+01:00)",
    )
    expect(err.details).toMatchObject({ reason: 'token_budget', window: 'day', retry_after_s: 8 * 3600 })
  })

  test('when two budgets are used up, the refusal names the one that resets last', () => {
    const err = thrown(() => checkQuota(budgets, () => 6000, Z('2026-12-02T15:00:00Z'), BERLIN))
    expect(err.details).toMatchObject({ window: 'week', resets_at: '2026-12-07T00:00:00+01:00' })
  })

  test('the second before and after a reset on the 25-hour day', () => {
    const reset = Z('2026-10-25T23:00:00Z') // Monday 00:00 CET, after the 25-hour Sunday
    const usage = [{ at: Z('2026-10-25T12:00:00Z'), tokens: 1000 }]
    const used = (from: number) => usage.filter((u) => u.at >= from).reduce((n, u) => n + u.tokens, 0)
    const before = thrown(() =>
      checkQuota({ day: 1000, week: null, month: null }, used, reset - 1000, BERLIN),
    )
    expect(before.details).toMatchObject({ retry_after_s: 1, resets_at: '2026-10-26T00:00:00+01:00' })
    const after = checkQuota({ day: 1000, week: null, month: null }, used, reset, BERLIN)
    expect(after.windows[0]).toMatchObject({ used: 0, remaining: 1000 })
  })

  test('crossings of 80 % and 100 %, once each, starting over in a new window', () => {
    const now = Z('2026-12-02T15:00:00Z')
    const at = (used: number, t = now) =>
      quotaStatus({ day: 1000, week: null, month: null }, () => used, t, BERLIN)
    expect(quotaCrossings('d', at(700), at(799))).toEqual([])
    expect(quotaCrossings('d', at(700), at(800))).toEqual([
      {
        device_id: 'd',
        window: 'day',
        threshold: 80,
        used: 800,
        budget: 1000,
        resets_at: Z('2026-12-02T23:00:00Z'),
      },
    ])
    expect(quotaCrossings('d', at(790), at(1200)).map((c) => c.threshold)).toEqual([80, 100])
    expect(quotaCrossings('d', at(1000), at(1100))).toEqual([])
    // Yesterday's reading was over; today's first request past 80 % is a crossing again.
    expect(quotaCrossings('d', at(1100, now - 24 * H), at(900)).map((c) => c.threshold)).toEqual([80])
  })

  test('a budget of 0 refuses everything; no budget never refuses', () => {
    expect(() => checkQuota({ day: 0, week: null, month: null }, () => 0, 0, BERLIN)).toThrow(/used up/)
    expect(checkQuota({ day: null, week: null, month: null }, () => 1e12, 0, BERLIN).exceeded).toBeNull()
  })
})

describe('allowed hours', () => {
  const school: AllowedHours = [
    { days: [1, 2, 3, 4, 5], from: '16:00', to: '20:00' },
    { days: [0, 6], from: '09:00', to: '21:00' },
  ]

  test('open and closed at the second before and after each edge, with the next change', () => {
    const fri1959 = Z('2026-12-04T18:59:59Z') // Friday 19:59:59 CET
    const open = hoursStatus(school, fri1959, BERLIN)
    expect(open).toMatchObject({ open: true, always: false, next_open: null })
    expect(isoLocal(open.open_until as number, BERLIN)).toBe('2026-12-04T20:00:00+01:00')
    const closed = hoursStatus(school, fri1959 + 1000, BERLIN)
    expect(closed).toMatchObject({ open: false, open_until: null })
    expect(isoLocal(closed.next_open as number, BERLIN)).toBe('2026-12-05T09:00:00+01:00')
    expect(hoursStatus(school, Z('2026-12-05T07:59:59Z'), BERLIN).open).toBe(false)
    expect(hoursStatus(school, Z('2026-12-05T08:00:00Z'), BERLIN).open).toBe(true)
    expect(hoursStatus(null, fri1959, BERLIN)).toMatchObject({ open: true, always: true, next_change: null })
  })

  test('outside the hours is a 403 with the next opening and Retry-After', () => {
    const mon = Z('2026-12-07T10:00:00Z') // Monday 11:00
    const err = thrown(() => checkHours(school, mon, BERLIN))
    expect(err.status).toBe(403)
    expect(err.message).toBe(
      "outside this device's allowed hours; it opens Mon 16:00 (2026-12-07T16:00:00+01:00)",
    )
    expect(err.details).toMatchObject({ reason: 'allowed_hours', retry_after_s: 5 * 3600 })
    expect(thrown(() => checkHours([], mon, BERLIN)).message).toMatch(/never open/)
  })

  test('a window past midnight and one past Saturday midnight into Sunday', () => {
    const late: AllowedHours = [
      { days: [5], from: '22:00', to: '01:00' },
      { days: [6], from: '23:00', to: '02:00' },
    ]
    expect(hoursStatus(late, Z('2026-12-04T23:30:00Z'), BERLIN).open).toBe(true) // Sat 00:30
    expect(hoursStatus(late, Z('2026-12-05T00:00:00Z'), BERLIN).open).toBe(false) // Sat 01:00
    const sunday = hoursStatus(late, Z('2026-12-06T00:59:59Z'), BERLIN) // Sun 01:59:59
    expect(sunday.open).toBe(true)
    expect(isoLocal(sunday.open_until as number, BERLIN)).toBe('2026-12-06T02:00:00+01:00')
  })

  test('touching windows are one open stretch; a window in the skipped hour opens when the clock jumps', () => {
    const split: AllowedHours = [
      { days: [1], from: '08:00', to: '12:00' },
      { days: [1], from: '12:00', to: '14:00' },
    ]
    const s = hoursStatus(split, Z('2026-12-07T08:00:00Z'), BERLIN)
    expect(isoLocal(s.open_until as number, BERLIN)).toBe('2026-12-07T14:00:00+01:00')
    const night: AllowedHours = [{ days: [0], from: '02:00', to: '04:00' }]
    const before = hoursStatus(night, Z('2026-03-29T00:59:59Z'), BERLIN) // 01:59:59 CET
    expect(before.open).toBe(false)
    expect(isoLocal(before.next_open as number, BERLIN)).toBe('2026-03-29T03:00:00+02:00')
    expect(hoursStatus(night, Z('2026-03-29T01:00:00Z'), BERLIN).open).toBe(true) // 03:00 CEST
    expect(hoursStatus(night, Z('2026-03-29T02:00:00Z'), BERLIN).open).toBe(false) // 04:00 CEST
    // A window that ends inside the skipped hour closes when the clock jumps over its end.
    const early: AllowedHours = [{ days: [0], from: '01:00', to: '02:30' }]
    const open = hoursStatus(early, Z('2026-03-29T00:30:00Z'), BERLIN) // 01:30 CET
    expect(open.open).toBe(true)
    expect(isoLocal(open.open_until as number, BERLIN)).toBe('2026-03-29T03:00:00+02:00')
    expect(hoursStatus(early, Z('2026-03-29T00:59:59Z'), BERLIN).open).toBe(true)
    expect(hoursStatus(early, Z('2026-03-29T01:00:00Z'), BERLIN).open).toBe(false)
  })

  test('the repeated hour of the fall-back night is inside a window once for each time it happens', () => {
    const night: AllowedHours = [{ days: [0], from: '02:00', to: '03:00' }]
    expect(hoursStatus(night, Z('2026-10-25T00:30:00Z'), BERLIN).open).toBe(true) // 02:30 CEST
    expect(hoursStatus(night, Z('2026-10-25T01:30:00Z'), BERLIN).open).toBe(true) // 02:30 CET
    expect(hoursStatus(night, Z('2026-10-25T02:00:00Z'), BERLIN).open).toBe(false) // 03:00 CET
  })

  test('one more hour: from now when closed, from the closing time when open, and it runs out', () => {
    const sat2130 = Z('2026-12-05T20:30:00Z') // Saturday 21:30, closed since 21:00
    const until = oneMoreHour(school, sat2130, BERLIN)
    expect(until).toBe(sat2130 + H)
    const granted = hoursStatus(school, until - 1000, BERLIN, until)
    expect(granted).toMatchObject({ open: true, granted_until: until })
    expect(granted.open_until).toBe(until)
    expect(hoursStatus(school, until, BERLIN, until).open).toBe(false)
    expect(() => checkHours(school, sat2130, BERLIN, until)).not.toThrow()
    const fri1950 = Z('2026-12-04T18:50:00Z')
    expect(isoLocal(oneMoreHour(school, fri1950, BERLIN), BERLIN)).toBe('2026-12-04T21:00:00+01:00')
    // A second grant adds an hour to the one still running.
    expect(oneMoreHour(school, sat2130, BERLIN, until)).toBe(until + H)
  })
})

describe('properties over real zones', () => {
  const zones = ['Europe/Berlin', 'America/New_York', 'Asia/Kolkata', 'Australia/Lord_Howe', 'UTC']
  const anyTime = fc.integer({ min: Z('2025-01-01T00:00:00Z'), max: Z('2028-12-31T00:00:00Z') })
  // Half the instants fall within two days of a DST change of one of the zones.
  const changes = [
    '2026-03-29T01:00:00Z',
    '2026-10-25T01:00:00Z',
    '2026-03-08T07:00:00Z',
    '2026-11-01T06:00:00Z',
    '2026-04-04T15:00:00Z',
    '2026-10-03T15:30:00Z',
  ].map(Z)
  const nearChange = fc
    .tuple(fc.constantFrom(...changes), fc.integer({ min: -2 * 24 * 3600, max: 2 * 24 * 3600 }))
    .map(([t, s]) => t + s * 1000)
  const instant = fc.oneof(anyTime, nearChange)

  test('windows contain their instant, follow each other without gaps, and days are 23 to 25 hours', () => {
    fc.assert(
      fc.property(
        instant,
        fc.constantFrom(...zones),
        fc.constantFrom('day', 'week', 'month'),
        (t, zone, kind) => {
          const [start, reset] = windowAt(kind as 'day', t, zone)
          expect(start).toBeLessThanOrEqual(t)
          expect(reset).toBeGreaterThan(t)
          expect(windowAt(kind as 'day', reset, zone)[0]).toBe(reset)
          expect(windowAt(kind as 'day', reset - 1, zone)[1]).toBe(reset)
          if (kind === 'day') expect([23, 23.5, 24, 24.5, 25]).toContain((reset - start) / H)
        },
      ),
      { numRuns: 500 },
    )
  })

  const time = fc
    .tuple(fc.integer({ min: 0, max: 23 }), fc.constantFrom(0, 15, 30, 45))
    .map(([h, m]) => `${String(h).padStart(2, '0')}:${String(m).padStart(2, '0')}`)
  const schedule = fc
    .array(
      fc.record({
        days: fc.uniqueArray(fc.integer({ min: 0, max: 6 }), { minLength: 1, maxLength: 7 }),
        from: time,
        to: fc.oneof(time, fc.constant('24:00')),
      }),
      { minLength: 1, maxLength: 4 },
    )
    .filter((w) => allowedHoursSchema.safeParse(w).success)

  test('hours: the state holds until next_change and flips there', () => {
    fc.assert(
      fc.property(schedule, instant, fc.constantFrom(...zones), (sched, t, zone) => {
        const now = t - (t % 1000)
        const s = hoursStatus(sched, now, zone)
        if (s.next_change === null) {
          // Never changes within the scan: open all week long.
          expect(s.open).toBe(true)
          return
        }
        expect(s.next_change).toBeGreaterThan(now)
        expect(s.next_change - now).toBeLessThanOrEqual(8 * 24 * H)
        for (const f of [0.25, 0.5, 0.75]) {
          const mid = now + Math.floor(((s.next_change - now) * f) / 1000) * 1000
          expect(hoursStatus(sched, mid, zone).open).toBe(s.open)
        }
        expect(hoursStatus(sched, s.next_change - 1000, zone).open).toBe(s.open)
        expect(hoursStatus(sched, s.next_change, zone).open).toBe(!s.open)
        expect(s.open ? s.open_until : s.next_open).toBe(s.next_change)
      }),
      { numRuns: 500 },
    )
  })
})

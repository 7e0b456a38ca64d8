import { describe, expect, it } from 'vitest'
import { at, hoursLine, newRequestId, ordinal, queueLine, refusalWords } from '../src/lib/limits'

const zone = 'Europe/Berlin'
// 2026-12-01 14:00 in Berlin (UTC+1).
const now = Date.UTC(2026, 11, 1, 13, 0)

describe('limits words', () => {
  it('says the place in line, with a time only when the host has one', () => {
    expect([1, 2, 3, 4, 11, 12, 13, 21, 22, 101].map(ordinal)).toEqual([
      '1st',
      '2nd',
      '3rd',
      '4th',
      '11th',
      '12th',
      '13th',
      '21st',
      '22nd',
      '101st',
    ])
    expect(queueLine(2, 8.4)).toBe('2nd in line, about 8 s')
    expect(queueLine(3, null)).toBe('3rd in line')
    expect(queueLine(1, 0.2)).toBe('Next in line, about 1 s')
    expect(queueLine(5, 300)).toBe('5th in line, about 5 min')
  })

  it('makes request ids the gateway accepts (8–64 safe characters)', () => {
    const a = newRequestId()
    expect(a).toMatch(/^[A-Za-z0-9_-]{8,64}$/)
    expect(newRequestId()).not.toBe(a)
  })

  it('reads times in the host’s zone, not the browser’s', () => {
    expect(at(Date.UTC(2026, 11, 1, 19, 0), zone, now)).toBe('at 20:00')
    expect(at(Date.UTC(2026, 11, 1, 23, 0), zone, now)).toBe('tomorrow at 00:00')
    expect(at(Date.UTC(2026, 11, 1, 19, 0), 'America/New_York', now)).toBe('at 14:00')
  })

  it('gives the schedule line from limits.hours', () => {
    const base = { time_zone: zone, quota: [] }
    const open = { open: true, always: false, next_change: null, next_open: null, granted_until: null }
    expect(hoursLine({ ...base, hours: { ...open, open_until: Date.UTC(2026, 11, 1, 19, 0) } }, now)).toBe(
      'Open until 20:00',
    )
    expect(
      hoursLine(
        {
          ...base,
          hours: { ...open, open: false, open_until: null, next_open: Date.UTC(2026, 11, 2, 15, 0) },
        },
        now,
      ),
    ).toBe('Closed now; opens tomorrow at 16:00')
    expect(hoursLine({ ...base, hours: { ...open, always: true, open_until: null } }, now)).toBeNull()
  })

  it('turns a budget or hours refusal into plain words, and leaves other errors alone', () => {
    const d = {
      reason: 'token_budget',
      window: 'day',
      budget: 1200,
      used: 1250,
      resets_at: '2030-01-01T00:00:00+01:00',
    }
    expect(refusalWords(429, d, zone)).toMatch(
      /^You have used today’s 1,200 tokens\. You can chat again on .* at 00:00\.$/,
    )
    expect(refusalWords(403, { reason: 'allowed_hours', next_open: null }, zone)).toMatch(
      /no opening is scheduled/,
    )
    expect(refusalWords(429, { reason: 'rate' }, zone)).toBeNull()
    expect(refusalWords(500, undefined)).toBeNull()
  })
})

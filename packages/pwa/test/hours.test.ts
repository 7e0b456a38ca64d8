import { describe, expect, it } from 'vitest'
import { formatHours, parseHours } from '../src/lib/hours'

describe('allowed hours as lines', () => {
  it('reads day ranges, lists and past-midnight windows, and writes them back', () => {
    const r = parseHours('Mon-Fri 16:00-20:00\n sat,SUN 9:00 - 21:00 \n\nFri-Mon 22:00-02:00')
    expect(r).toEqual({
      value: [
        { days: [1, 2, 3, 4, 5], from: '16:00', to: '20:00' },
        { days: [0, 6], from: '09:00', to: '21:00' },
        { days: [0, 1, 5, 6], from: '22:00', to: '02:00' },
      ],
    })
    expect(formatHours((r as { value: never }).value)).toBe(
      'Mon-Fri 16:00-20:00\nSun,Sat 09:00-21:00\nSun-Mon,Fri-Sat 22:00-02:00',
    )
    expect(parseHours('  ')).toEqual({ value: null })
    expect(formatHours(null)).toBe('')
  })

  it('names the line it cannot read (overlaps and bad times are the API’s to name)', () => {
    expect(parseHours('Mon-Fri 16:00-20:00\nafter school')).toEqual({
      error: 'line 2: write it as “Mon-Fri 16:00-20:00”',
    })
    expect(parseHours('Mon-Fry 16:00-20:00')).toEqual({
      error: 'line 1: “Mon-Fry” is not a day (Mon, Tue, … Sun)',
    })
  })
})

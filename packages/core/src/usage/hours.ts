import { SharedLLMError } from '../errors'
import type { AllowedHours, HoursStatus } from '../protocol/types'
import { minutesOfDay, windowSpans } from '../schemas'
import { instantOf, isoLocal, shortLocal, wallTime } from './zoned'

function inSchedule(schedule: AllowedHours, t: number, zone: string): boolean {
  const w = wallTime(t, zone)
  const pos = w.weekday * 1440 + w.hour * 60 + w.minute + w.second / 60
  for (const win of schedule) {
    for (const [a, b] of windowSpans(win)) if (pos >= a && pos < b) return true
  }
  return false
}

/** Every instant a window of the schedule opens or closes, from a day before `t` to eight days after. */
function boundaries(schedule: AllowedHours, t: number, zone: string): number[] {
  const today = wallTime(t, zone)
  const out: number[] = []
  for (let k = -1; k <= 8; k++) {
    const weekday = new Date(Date.UTC(today.year, today.month - 1, today.day + k)).getUTCDay()
    for (const win of schedule) {
      if (!win.days.includes(weekday)) continue
      const from = minutesOfDay(win.from)
      const to = minutesOfDay(win.to)
      const date = { year: today.year, month: today.month, day: today.day + k }
      out.push(instantOf({ ...date, minute: from }, zone))
      out.push(instantOf({ ...date, day: date.day + (to > from ? 0 : 1), minute: to }, zone))
    }
  }
  return out
}

/**
 * Open or closed at `now`, and when that changes. `schedule` null is always open; an empty list never
 * opens. `grantedUntil` (an owner's extra time) keeps it open until then whatever the schedule says.
 */
export function hoursStatus(
  schedule: AllowedHours | null,
  now: number,
  zone: string,
  grantedUntil: number | null = null,
): HoursStatus {
  const grant = grantedUntil !== null && grantedUntil > now ? grantedUntil : null
  if (schedule === null) {
    return {
      open: true,
      always: true,
      next_change: null,
      next_open: null,
      open_until: null,
      granted_until: grant,
    }
  }
  const openAt = (t: number) => (grant !== null && t < grant) || inSchedule(schedule, t, zone)
  const open = openAt(now)
  const candidates = boundaries(schedule, now, zone)
  if (grant !== null) candidates.push(grant)
  let next: number | null = null
  for (const c of [...new Set(candidates)].filter((c) => c > now).sort((a, b) => a - b)) {
    if (openAt(c) !== open) {
      next = c
      break
    }
  }
  return {
    open,
    always: false,
    next_change: next,
    next_open: open ? null : next,
    open_until: open ? next : null,
    granted_until: grant,
  }
}

/**
 * Refuses a request outside the allowed hours: FORBIDDEN (403) naming the next opening, with
 * `retry_after_s` until then. Returns the status when open.
 */
export function checkHours(
  schedule: AllowedHours | null,
  now: number,
  zone: string,
  grantedUntil: number | null = null,
): HoursStatus {
  const status = hoursStatus(schedule, now, zone, grantedUntil)
  if (status.open) return status
  const next = status.next_open
  throw new SharedLLMError(
    'FORBIDDEN',
    next === null
      ? "this device's allowed hours never open; ask the host owner to change them"
      : `outside this device's allowed hours; it opens ${shortLocal(next, zone)} (${isoLocal(next, zone)})`,
    {
      details: {
        reason: 'allowed_hours',
        next_open: next === null ? null : isoLocal(next, zone),
        ...(next === null ? {} : { retry_after_s: Math.max(1, Math.ceil((next - now) / 1000)) }),
      },
    },
  )
}

/**
 * An owner's "one more hour": an hour past whichever is later, now, the end of today's open window, or a
 * grant still running.
 */
export function oneMoreHour(
  schedule: AllowedHours | null,
  now: number,
  zone: string,
  grantedUntil: number | null = null,
): number {
  const status = hoursStatus(schedule, now, zone, grantedUntil)
  const base = Math.max(now, status.open ? (status.open_until ?? now) : now, status.granted_until ?? now)
  return base + 3_600_000
}

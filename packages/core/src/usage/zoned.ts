import type { QuotaWindow } from '../protocol/limits'

/**
 * Wall-clock arithmetic in a named IANA time zone with nothing but Intl (Node 20 ships full ICU). Budgets
 * reset and schedules open on the host's wall clock, so a day is 23 or 25 hours across a DST change.
 */

export interface WallTime {
  year: number
  /** 1–12 */
  month: number
  day: number
  hour: number
  minute: number
  second: number
  /** 0 = Sunday … 6 = Saturday */
  weekday: number
}

/** A civil date and time; fields may overflow (day 32, hour 24) and roll over as Date.UTC does. */
export interface WallInput {
  year: number
  month: number
  day: number
  hour?: number
  minute?: number
}

const HOUR = 3_600_000
const formats = new Map<string, Intl.DateTimeFormat>()
const WEEKDAYS: Record<string, number> = { Sun: 0, Mon: 1, Tue: 2, Wed: 3, Thu: 4, Fri: 5, Sat: 6 }

/** The host's time zone, e.g. `Europe/Berlin` (from TZ or the system). */
let zoneCache: { tz: string | undefined; zone: string } | undefined

/**
 * The host's time zone. Building an Intl.DateTimeFormat costs tens of µs and the usage recorder asks on every
 * request, so the answer is kept until the process's TZ changes.
 */
export function hostTimeZone(): string {
  const tz = globalThis.process?.env?.TZ
  if (zoneCache && zoneCache.tz === tz) return zoneCache.zone
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC'
  zoneCache = { tz, zone }
  return zone
}

/** True when Intl knows the zone. */
export function isTimeZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: zone })
    return true
  } catch {
    return false
  }
}

function format(zone: string): Intl.DateTimeFormat {
  let f = formats.get(zone)
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone: zone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
      weekday: 'short',
    })
    formats.set(zone, f)
  }
  return f
}

export function wallTime(t: number, zone: string): WallTime {
  const parts: Record<string, string> = {}
  for (const p of format(zone).formatToParts(new Date(t))) parts[p.type] = p.value
  return {
    year: Number(parts.year),
    month: Number(parts.month),
    day: Number(parts.day),
    hour: Number(parts.hour),
    minute: Number(parts.minute),
    second: Number(parts.second),
    weekday: WEEKDAYS[parts.weekday ?? 'Sun'] ?? 0,
  }
}

/** The zone's offset from UTC at instant `t`, in ms (Berlin in winter: +3 600 000). */
export function offsetAt(t: number, zone: string): number {
  const w = wallTime(t, zone)
  const asUtc = Date.UTC(w.year, w.month - 1, w.day, w.hour, w.minute, w.second)
  return asUtc - (t - (((t % 1000) + 1000) % 1000))
}

/**
 * The first instant the zone's clock shows the wall time or later. A time that happens twice (the hour
 * repeated when clocks go back) is its first occurrence; one that never happens (skipped when clocks go
 * forward) is the instant of the jump, when the clock first passes it: a window from 02:30 on the night
 * clocks jump from 02:00 to 03:00 opens at 03:00, and so does one from 02:00.
 */
export function instantOf(wall: WallInput, zone: string): number {
  const local = Date.UTC(wall.year, wall.month - 1, wall.day, wall.hour ?? 0, wall.minute ?? 0)
  const before = offsetAt(local - 36 * HOUR, zone)
  const after = offsetAt(local + 36 * HOUR, zone)
  const valid = [...new Set([before, after, offsetAt(local, zone)])]
    .map((o) => local - o)
    .filter((t) => offsetAt(t, zone) === local - t)
  if (valid.length > 0) return Math.min(...valid)
  // In the gap: the transition lies between the old offset's last instant before the wall time and the new
  // offset's instant for it; find it to the second.
  let lo = local - Math.max(before, after)
  let hi = local - Math.min(before, after)
  while (hi - lo > 1000) {
    const mid = lo + Math.floor((hi - lo) / 2000) * 1000
    if (mid + offsetAt(mid, zone) >= local) hi = mid
    else lo = mid
  }
  return hi
}

/** Start of the local hour containing `t` (also right for zones offset by :30 or :45). */
export function startOfHour(t: number, zone: string): number {
  const local = t + offsetAt(t, zone)
  return t - (((local % HOUR) + HOUR) % HOUR)
}

export type { QuotaWindow }

/**
 * The last window found per kind and zone. Windows tile time, so one that holds `t` is the answer; the
 * gateway asks for all three on every request of a device, and working one out takes a dozen Intl calls.
 */
const lastWindow = new Map<string, readonly [number, number]>()

/**
 * The window of `kind` containing `t`: local midnight to the next one; ISO weeks start on Monday; months on
 * the 1st. Returns `[start, reset)`.
 */
export function windowAt(kind: QuotaWindow, t: number, zone: string): [number, number] {
  const key = `${kind}\u0000${zone}`
  const hit = lastWindow.get(key)
  if (hit && t >= hit[0] && t < hit[1]) return [hit[0], hit[1]]
  const found = computeWindow(kind, t, zone)
  if (lastWindow.size > 64) lastWindow.clear()
  lastWindow.set(key, found)
  return [found[0], found[1]]
}

function computeWindow(kind: QuotaWindow, t: number, zone: string): [number, number] {
  const w = wallTime(t, zone)
  if (kind === 'day') {
    return [
      instantOf({ year: w.year, month: w.month, day: w.day }, zone),
      instantOf({ year: w.year, month: w.month, day: w.day + 1 }, zone),
    ]
  }
  if (kind === 'week') {
    const monday = w.day - ((w.weekday + 6) % 7)
    return [
      instantOf({ year: w.year, month: w.month, day: monday }, zone),
      instantOf({ year: w.year, month: w.month, day: monday + 7 }, zone),
    ]
  }
  return [
    instantOf({ year: w.year, month: w.month, day: 1 }, zone),
    instantOf({ year: w.year, month: w.month + 1, day: 1 }, zone),
  ]
}

const pad = (n: number, len = 2) => String(n).padStart(len, '0')

/** `2026-12-07T16:00:00+01:00`: the instant as the host's wall clock shows it, with the offset. */
export function isoLocal(t: number, zone: string): string {
  const w = wallTime(t, zone)
  const off = Math.round(offsetAt(t, zone) / 60_000)
  const sign = off < 0 ? '-' : '+'
  const abs = Math.abs(off)
  return `${w.year}-${pad(w.month)}-${pad(w.day)}T${pad(w.hour)}:${pad(w.minute)}:${pad(w.second)}${sign}${pad(Math.floor(abs / 60))}:${pad(abs % 60)}`
}

const DAY_NAMES = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat']

/** `Mon 16:00` for a message a person reads. */
export function shortLocal(t: number, zone: string): string {
  const w = wallTime(t, zone)
  return `${DAY_NAMES[w.weekday]} ${pad(w.hour)}:${pad(w.minute)}`
}

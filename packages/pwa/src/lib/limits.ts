import type { DeviceLimitsView, QuotaWindowView } from '@sharedllm/core/protocol'
import { formatCount } from './format'

/** 1 → `1st`, 2 → `2nd`, 11 → `11th`, 23 → `23rd`. */
export function ordinal(n: number): string {
  const tens = n % 100
  const suffix =
    tens >= 11 && tens <= 13 ? 'th' : n % 10 === 1 ? 'st' : n % 10 === 2 ? 'nd' : n % 10 === 3 ? 'rd' : 'th'
  return `${n}${suffix}`
}

/** What the chat shows while a request waits: `2nd in line, about 8 s` (no time when the host has none). */
export function queueLine(position: number, etaS: number | null): string {
  const place = position <= 1 ? 'Next in line' : `${ordinal(position)} in line`
  if (etaS === null || !Number.isFinite(etaS)) return place
  const s = Math.max(1, Math.round(etaS))
  return `${place}, about ${s < 90 ? `${s} s` : `${Math.round(s / 60)} min`}`
}

/**
 * A request id the gateway accepts as `X-Request-Id` (8–64 safe characters). `crypto.randomUUID` exists only
 * in secure contexts, and the app also runs over plain HTTP at a LAN address; `getRandomValues` works in both.
 */
export function newRequestId(): string {
  const bytes = new Uint8Array(12)
  crypto.getRandomValues(bytes)
  return `chat-${Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')}`
}

const WINDOW_NAME: Record<QuotaWindowView['window'], string> = {
  day: 'today’s',
  week: 'this week’s',
  month: 'this month’s',
}
const WINDOW_TITLE: Record<QuotaWindowView['window'], string> = {
  day: 'Today',
  week: 'This week',
  month: 'This month',
}
export const windowTitle = (w: QuotaWindowView['window']) => WINDOW_TITLE[w]
/** `today’s`, `this week’s`, `this month’s`: a budget window as a possessive. */
export const windowName = (w: QuotaWindowView['window']) => WINDOW_NAME[w]

/** `at 14:00`, `tomorrow at 00:00`, `on Mon 7 Dec at 16:00`: a time in the host's zone, as words. */
export function at(ms: number, zone: string | undefined, now = Date.now()): string {
  const opts: Intl.DateTimeFormatOptions = { hour: '2-digit', minute: '2-digit', hourCycle: 'h23' }
  if (zone) opts.timeZone = zone
  const day = (t: number) => new Date(t).toLocaleDateString('en-GB', zone ? { timeZone: zone } : {})
  const time = new Date(ms).toLocaleTimeString('en-GB', opts)
  if (day(ms) === day(now)) return `at ${time}`
  if (day(ms) === day(now + 86_400_000)) return `tomorrow at ${time}`
  const wd = new Date(ms).toLocaleDateString('en-GB', {
    weekday: 'short',
    day: 'numeric',
    month: 'short',
    ...(zone ? { timeZone: zone } : {}),
  })
  return `on ${wd} at ${time}`
}

/** `open until 20:00` / `opens at 16:00` / null when there is no schedule. */
export function hoursLine(limits: DeviceLimitsView | undefined, now = Date.now()): string | null {
  if (!limits || limits.hours.always) return null
  const h = limits.hours
  const z = limits.time_zone
  if (h.open) {
    const until =
      h.granted_until && (!h.open_until || h.granted_until > h.open_until) ? h.granted_until : h.open_until
    return until ? `Open until ${at(until, z, now).replace(/^at /, '')}` : 'Open now'
  }
  return h.next_open ? `Closed now; opens ${at(h.next_open, z, now)}` : 'Closed; no opening is scheduled'
}

/**
 * A budget or hours refusal in plain words, from the API's details (`reason: token_budget`), or null for any
 * other error (shown as the API wrote it).
 */
export function refusalWords(
  status: number,
  details: Record<string, unknown> | undefined,
  zone?: string,
): string | null {
  if (status === 429 && details?.reason === 'token_budget') {
    const w = details.window as QuotaWindowView['window']
    const reset = typeof details.resets_at === 'string' ? Date.parse(details.resets_at) : Number.NaN
    const when = Number.isFinite(reset) ? ` You can chat again ${at(reset, zone)}.` : ''
    return `You have used ${WINDOW_NAME[w] ?? 'your'} ${formatCount(Number(details.budget))} tokens.${when}`
  }
  if (status === 403 && details?.reason === 'allowed_hours') {
    const next = typeof details.next_open === 'string' ? Date.parse(details.next_open) : Number.NaN
    return Number.isFinite(next)
      ? `The host is closed for this device right now. It opens ${at(next, zone)}.`
      : 'The host is closed for this device, and no opening is scheduled. Ask the owner.'
  }
  return null
}

export function percentUsed(q: QuotaWindowView): number {
  if (!q.budget) return 0
  return Math.min(100, Math.round((q.used / q.budget) * 100))
}

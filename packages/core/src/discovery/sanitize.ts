import { isIP } from 'node:net'
import { addressKind, canonicalIp } from '../tls/addresses'

/** Longest device/peer name kept from an advert (the device name limit). */
export const MAX_NAME_LENGTH = 64

/**
 * Turns an untrusted name from the LAN (an mDNS advert, a join request) into a display-safe one: NFKC
 * (fullwidth and other compatibility forms become the plain letters), no control, format, private-use or
 * unassigned characters (`\p{C}`: bidi overrides, zero-width, BOM are removed; tabs and line breaks become
 * spaces), no markup characters, whitespace collapsed, at most `max` characters. '' when nothing is left.
 */
export function sanitizeName(input: unknown, max = MAX_NAME_LENGTH): string {
  if (typeof input !== 'string') return ''
  // Bound the work before the regexes run: a TXT value is at most 255 bytes, but callers may pass more.
  const bounded = input.slice(0, max * 8)
  const cleaned = bounded
    .normalize('NFKC')
    .replace(/[\p{Cc}\p{Zl}\p{Zp}]/gu, ' ')
    .replace(/\p{C}/gu, '')
    .replace(/[<>"`\\]/g, '')
    .replace(/\s+/g, ' ')
    .trim()
  return Array.from(cleaned).slice(0, max).join('').trim()
}

// Bidirectional controls (Unicode TR9): embeddings, overrides, isolates and the implicit marks.
const BIDI = /[\u061C\u200E\u200F\u202A-\u202E\u2066-\u2069]/u

/** Whether a name carries bidirectional controls: a join request with one is refused, not cleaned. */
export function hasBidiControls(input: string): boolean {
  return BIDI.test(input)
}

// Letters that look like Latin ones in common fonts (Cyrillic, Greek): enough to flag "Аnna's phone".
const CONFUSABLE: Record<string, string> = {
  а: 'a',
  в: 'b',
  е: 'e',
  ё: 'e',
  к: 'k',
  м: 'm',
  н: 'h',
  о: 'o',
  р: 'p',
  с: 'c',
  т: 't',
  у: 'y',
  х: 'x',
  і: 'i',
  ї: 'i',
  ј: 'j',
  ѕ: 's',
  ԁ: 'd',
  ɡ: 'g',
  α: 'a',
  β: 'b',
  ε: 'e',
  η: 'n',
  ι: 'i',
  κ: 'k',
  ν: 'v',
  ο: 'o',
  ρ: 'p',
  τ: 't',
  υ: 'u',
  χ: 'x',
  '0': 'o',
  '1': 'l',
  '|': 'l',
}

/**
 * What two names that a person would read as the same have in common: sanitised, case-folded, look-alike
 * letters folded, spaces and punctuation dropped. Used to flag a join request that copies a known name.
 */
export function nameSkeleton(input: string): string {
  return Array.from(sanitizeName(input).toLowerCase().normalize('NFD').replace(/\p{M}/gu, ''))
    .map((c) => CONFUSABLE[c] ?? c)
    .join('')
    .replace(/[^\p{L}\p{N}]/gu, '')
}

/** An mDNS instance label (`Name (abcd1234)`) back into a name: DNS escapes are undone first. */
export function nameFromInstanceLabel(label: string): string {
  return sanitizeName(label.replace(/\\(\d{3})/g, (_, d: string) => String.fromCharCode(Number(d))))
}

export interface AdvertTxt {
  instance_id: string
  version: string | null
  api_port: number | null
  auth: string | null
  name: string | null
  /** Other keys, sanitised, for extensions (https port, CA fingerprint). */
  extra: Record<string, string>
}

const INSTANCE_ID = /^[A-Za-z0-9][A-Za-z0-9-]{7,63}$/
const VERSION = /^[0-9A-Za-z][0-9A-Za-z.+-]{0,31}$/
const TXT_KEY = /^[a-z0-9_-]{1,32}$/
const MAX_TXT_ENTRIES = 32

/**
 * Decodes a TXT record (an array of `key=value` strings or buffers, as multicast-dns gives it) into
 * validated fields. Returns null without a valid instance id: such an advert is not a sharedLLM host.
 */
export function parseTxt(data: unknown): AdvertTxt | null {
  const entries = Array.isArray(data) ? data : [data]
  const map = new Map<string, string>()
  for (const entry of entries.slice(0, MAX_TXT_ENTRIES)) {
    const text = Buffer.isBuffer(entry) ? entry.toString('utf8') : typeof entry === 'string' ? entry : null
    if (text === null) continue
    const eq = text.indexOf('=')
    const key = (eq === -1 ? text : text.slice(0, eq)).toLowerCase()
    // RFC 6763 §6.4: the first occurrence of a key wins.
    if (!TXT_KEY.test(key) || map.has(key)) continue
    map.set(key, eq === -1 ? '' : text.slice(eq + 1, eq + 256))
  }
  const id = map.get('id')
  if (!id || !INSTANCE_ID.test(id)) return null
  const version = map.get('v') ?? map.get('version')
  const port = Number(map.get('port'))
  const extra: Record<string, string> = {}
  for (const [k, v] of map) {
    if (['id', 'v', 'version', 'port', 'auth', 'name'].includes(k)) continue
    extra[k] = sanitizeName(v, 128)
  }
  return {
    instance_id: id,
    version: version && VERSION.test(version) ? version : null,
    api_port: Number.isInteger(port) && port >= 1 && port <= 65535 ? port : null,
    auth: map.has('auth') ? sanitizeName(map.get('auth'), 32) : null,
    name: map.has('name') ? sanitizeName(map.get('name')) || null : null,
    extra,
  }
}

/**
 * Orders the addresses an advert resolved to: the packet's source first (it is the one that reached us),
 * then IPv4, then IPv6. Each is canonicalised first (`::ffff:7f00:1` is 127.0.0.1, `0:0:0:0:0:0:0:1` is
 * `::1`), then loopback, link-local (169.254/16, fe80::/10), unspecified, multicast and broadcast addresses
 * and this host's own addresses are dropped, so a spoofed advert cannot point the join client at this
 * machine's own services.
 */
export function orderAddresses(
  addresses: unknown[],
  source: string | null,
  limit = 8,
  own: ReadonlySet<string> = new Set(),
): string[] {
  const valid = new Set<string>()
  const first = typeof source === 'string' ? canonicalIp(source) : null
  for (const a of [source, ...addresses]) {
    if (typeof a !== 'string') continue
    const ip = canonicalIp(a)
    if (ip !== null && addressKind(ip) === 'lan' && !own.has(ip)) valid.add(ip)
  }
  const rank = (a: string) => (a === first ? 0 : isIP(a) === 4 ? 1 : 2)
  return [...valid].sort((x, y) => rank(x) - rank(y)).slice(0, limit)
}

/** A unicast LAN address a peer can really have: not loopback, link-local, unspecified, multicast or broadcast. */
export function isUnicastAddress(a: string): boolean {
  return addressKind(a) === 'lan'
}

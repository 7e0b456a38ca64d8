import { BlockList, isIP } from 'node:net'
import { hostname as osHostname, networkInterfaces } from 'node:os'
import { SharedLLMError } from '../errors'

export interface SanSet {
  dns: string[]
  ip: string[]
}

/**
 * The machine's LAN addresses: every non-internal IPv4 and IPv6 address of `os.networkInterfaces()`.
 * Link-local IPv6 (fe80::/10) is left out: it needs a zone id that no URL or certificate can carry.
 */
export function lanAddresses(interfaces = networkInterfaces()): string[] {
  const out = new Set<string>()
  for (const list of Object.values(interfaces)) {
    for (const a of list ?? []) {
      if (a.internal) continue
      const ip = canonicalIp(a.address)
      if (ip === null || isLinkLocalV6(ip)) continue
      out.add(ip)
    }
  }
  return [...out]
}

/**
 * One spelling per address (`::1`, not `0:0:…:1` or `::0:1`), so addresses compare by string; an IPv4-mapped
 * IPv6 address (`::ffff:7f00:1`, `::ffff:127.0.0.1`) becomes the IPv4 address it is; null if not an IP.
 * A zone id (`fe80::1%eth0`) is dropped.
 */
export function canonicalIp(address: string): string | null {
  if (typeof address !== 'string' || address.length > 64) return null
  const bare = address.startsWith('[') && address.endsWith(']') ? address.slice(1, -1) : address
  const noZone = bare.includes('%') ? bare.slice(0, bare.indexOf('%')) : bare
  const family = isIP(noZone)
  if (family === 0) return null
  const host = new URL(`http://${family === 6 ? `[${noZone}]` : noZone}/`).hostname
  if (family === 4) return host
  const v6 = host.slice(1, -1)
  // WHATWG URL prints a mapped address as `::ffff:7f00:1`.
  const mapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(v6)
  if (mapped) {
    const hi = Number.parseInt(mapped[1] as string, 16)
    const lo = Number.parseInt(mapped[2] as string, 16)
    return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`
  }
  return v6
}

const LOOPBACK = new BlockList()
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4')
LOOPBACK.addAddress('::1', 'ipv6')

const LINK_LOCAL = new BlockList()
LINK_LOCAL.addSubnet('169.254.0.0', 16, 'ipv4')
LINK_LOCAL.addSubnet('fe80::', 10, 'ipv6')

/** Addresses a peer can never usefully advertise: unspecified, multicast, broadcast, mapped leftovers. */
const UNUSABLE = new BlockList()
UNUSABLE.addSubnet('0.0.0.0', 8, 'ipv4')
UNUSABLE.addSubnet('224.0.0.0', 3, 'ipv4') // multicast and reserved, broadcast included
UNUSABLE.addAddress('::', 'ipv6')
UNUSABLE.addSubnet('ff00::', 8, 'ipv6')
// IPv4-mapped IPv6 (::ffff:0:0/96) needs no rule of its own: BlockList matches a mapped address against
// the IPv4 rules above, and canonicalIp turns it into IPv4 before anything compares strings.

function family(ip: string): 'ipv4' | 'ipv6' {
  return isIP(ip) === 4 ? 'ipv4' : 'ipv6'
}

/** Loopback in any spelling (`127.0.0.2`, `0:0:0:0:0:0:0:1`, `::0:1`, `::ffff:7f00:1`). */
export function isLoopbackIp(address: string): boolean {
  const ip = canonicalIp(address)
  return ip !== null && LOOPBACK.check(ip, family(ip))
}

export type AddressKind = 'loopback' | 'link-local' | 'unusable' | 'lan'

/** What an address is, after canonicalising it; null when it is not an IP address. */
export function addressKind(address: string): AddressKind | null {
  const ip = canonicalIp(address)
  if (ip === null) return null
  const f = family(ip)
  if (LOOPBACK.check(ip, f)) return 'loopback'
  if (LINK_LOCAL.check(ip, f)) return 'link-local'
  if (UNUSABLE.check(ip, f)) return 'unusable'
  return 'lan'
}

/**
 * The key a per-source limit counts under: the IPv4 address, or the /64 of an IPv6 address (one host on a
 * LAN gets a whole /64 and picks addresses in it freely, so counting per address would count nothing).
 */
export function sourceKey(address: string): string {
  const ip = canonicalIp(address)
  if (ip === null) return `other:${String(address).slice(0, 64)}`
  if (isIP(ip) === 4) return ip
  const groups = expandV6(ip).slice(0, 4)
  return `${groups.join(':')}::/64`
}

function expandV6(ip: string): string[] {
  const [head = '', tail = ''] = ip.includes('::') ? ip.split('::') : [ip, '']
  const h = head ? head.split(':') : []
  const t = tail ? tail.split(':') : []
  // A trailing dotted quad (`::1.2.3.4`) is two groups.
  const last = t.length ? t[t.length - 1] : h[h.length - 1]
  const quad = last?.includes('.') ? 1 : 0
  const fill = Array(8 - h.length - t.length - quad).fill('0')
  return (ip.includes('::') ? [...h, ...fill, ...t] : h).map((g) => g.padStart(4, '0'))
}

function isLinkLocalV6(ip: string): boolean {
  return /^fe[89ab][0-9a-f]?:/i.test(ip)
}

/**
 * The address ranges the host CA may vouch for (its nameConstraints): loopback, the private IPv4 ranges,
 * shared address space (100.64/10, used by CGNAT and overlay VPNs) and IPv6 unique-local addresses. A public
 * address is never in a host certificate, so the CA's key can never be used to impersonate a public site.
 */
export const SERVED_RANGES: ReadonlyArray<{ network: string; prefix: number }> = [
  { network: '127.0.0.0', prefix: 8 },
  { network: '10.0.0.0', prefix: 8 },
  { network: '172.16.0.0', prefix: 12 },
  { network: '192.168.0.0', prefix: 16 },
  { network: '100.64.0.0', prefix: 10 },
  { network: '::1', prefix: 128 },
  { network: 'fc00::', prefix: 7 },
]

const SERVED = new BlockList()
for (const r of SERVED_RANGES) SERVED.addSubnet(r.network, r.prefix, isIP(r.network) === 4 ? 'ipv4' : 'ipv6')

/** Whether the host CA's constraints cover this address (see `SERVED_RANGES`). */
export function isServedAddress(address: string): boolean {
  const ip = canonicalIp(address)
  return ip !== null && SERVED.check(ip, family(ip))
}

const LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/

function isDnsName(name: string): boolean {
  return name.length <= 253 && name.split('.').every((l) => LABEL.test(l))
}

/**
 * The names and addresses the server certificate must cover: localhost and loopback, the hostname, its
 * mDNS name (`<first label>.local`) and the given addresses within `SERVED_RANGES` (a public address is
 * left out: the CA may not vouch for it). An explicit bad hostname or address is a VALIDATION error; an odd
 * OS hostname (spaces, underscores) is skipped, since browsers could not use it.
 */
export function desiredSans(o: { hostname?: string; addresses: string[] }): SanSet {
  const dns = new Set(['localhost'])
  const ip = new Set(['127.0.0.1', '::1'])
  const explicit = o.hostname !== undefined
  const host = (o.hostname ?? osHostname()).trim().toLowerCase().replace(/\.$/, '')
  if (isDnsName(host)) {
    dns.add(host)
    dns.add(host.endsWith('.local') ? host : `${host.split('.')[0]}.local`)
  } else if (explicit) {
    throw new SharedLLMError('VALIDATION', `hostname '${o.hostname}' is not a valid DNS name`, {
      details: { field: 'hostname' },
    })
  }
  for (const a of o.addresses) {
    const c = canonicalIp(a)
    if (c === null) {
      throw new SharedLLMError('VALIDATION', `address '${a}' is not an IPv4 or IPv6 address`, {
        details: { field: 'addresses' },
      })
    }
    if (isServedAddress(c)) ip.add(c)
  }
  return { dns: [...dns], ip: [...ip] }
}

/** The entries of `wanted` that `have` lacks. */
export function missingSans(have: SanSet, wanted: SanSet): string[] {
  const dns = new Set(have.dns.map((d) => d.toLowerCase()))
  const ip = new Set(have.ip)
  return [...wanted.dns.filter((d) => !dns.has(d)), ...wanted.ip.filter((a) => !ip.has(a))]
}

/** The address as bytes (4 for IPv4, 16 for IPv6), for certificate extensions. */
export function ipBytes(address: string): Buffer {
  const ip = canonicalIp(address)
  if (ip === null) throw new SharedLLMError('VALIDATION', `'${address}' is not an IP address`)
  if (isIP(ip) === 4) return Buffer.from(ip.split('.').map(Number))
  return Buffer.from(expandV6(ip).flatMap((g) => [Number.parseInt(g, 16) >> 8, Number.parseInt(g, 16) & 255]))
}

import { isIP } from 'node:net'
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

/** One spelling per address (`::1`, not `0:0:…:1`), so SAN sets compare by string; null if not an IP. */
export function canonicalIp(address: string): string | null {
  const family = isIP(address)
  if (family === 0) return null
  const host = new URL(`http://${family === 6 ? `[${address}]` : address}/`).hostname
  return family === 6 ? host.slice(1, -1) : host
}

function isLinkLocalV6(ip: string): boolean {
  return /^fe[89ab][0-9a-f]?:/i.test(ip)
}

const LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/

function isDnsName(name: string): boolean {
  return name.length <= 253 && name.split('.').every((l) => LABEL.test(l))
}

/**
 * The names and addresses the server certificate must cover: localhost and loopback, the hostname, its
 * mDNS name (`<first label>.local`) and the given addresses. An explicit bad hostname or address is a
 * VALIDATION error; an odd OS hostname (spaces, underscores) is skipped, since browsers could not use it.
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
    ip.add(c)
  }
  return { dns: [...dns], ip: [...ip] }
}

/** The entries of `wanted` that `have` lacks. */
export function missingSans(have: SanSet, wanted: SanSet): string[] {
  const dns = new Set(have.dns.map((d) => d.toLowerCase()))
  const ip = new Set(have.ip)
  return [...wanted.dns.filter((d) => !dns.has(d)), ...wanted.ip.filter((a) => !ip.has(a))]
}

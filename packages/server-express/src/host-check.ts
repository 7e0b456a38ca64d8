import { hostname, networkInterfaces } from 'node:os'
import type { IncomingMessage } from 'node:http'

/** The host part of a Host header (`[::1]:8080` → `::1`, `Box.local:80` → `box.local`); null when malformed. */
export function hostOf(header: string | undefined): string | null {
  if (!header || header.length > 300) return null
  let host = header.trim().toLowerCase()
  if (host.startsWith('[')) {
    const end = host.indexOf(']')
    if (end < 0) return null
    const rest = host.slice(end + 1)
    if (rest !== '' && !/^:\d{1,5}$/.test(rest)) return null
    host = host.slice(1, end)
  } else {
    const colon = host.lastIndexOf(':')
    if (colon >= 0) {
      if (host.indexOf(':') !== colon) return null // a bare IPv6 address must be bracketed
      if (!/^\d{1,5}$/.test(host.slice(colon + 1))) return null
      host = host.slice(0, colon)
    }
  }
  host = host.replace(/\.$/, '')
  return /^[a-z0-9.:%_-]+$/.test(host) ? host : null
}

/** The machine's own names and addresses, read fresh (interfaces come and go: Wi-Fi, VPN). */
function machineNames(): string[] {
  const names = ['localhost', '127.0.0.1', '::1']
  const name = hostname().toLowerCase()
  if (name) names.push(name, `${name}.local`, name.split('.')[0] ?? name)
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) names.push(a.address.toLowerCase().replace(/%.*$/, ''))
  }
  return names
}

/**
 * The DNS-rebinding guard: a request is served only when its Host names this machine (localhost, its
 * hostname, one of its addresses) or an extra name the owner configured. Machine names are cached for a few
 * seconds so a per-request check stays cheap.
 */
export class HostAllowlist {
  private cache: { at: number; names: Set<string> } | undefined

  constructor(private readonly extra: () => string[]) {}

  allows(header: string | undefined): boolean {
    const host = hostOf(header)
    if (!host) return false
    if (host === 'localhost' || host.endsWith('.localhost') || /^127\.\d+\.\d+\.\d+$/.test(host)) return true
    const now = Date.now()
    if (!this.cache || now - this.cache.at > 5_000) this.cache = { at: now, names: new Set(machineNames()) }
    if (this.cache.names.has(host)) return true
    return this.extra().some((name) => hostOf(name) === host)
  }

  allowsRequest(req: IncomingMessage): boolean {
    return this.allows(req.headers.host)
  }
}

export { isSameOrigin } from '@sharedllm/core'

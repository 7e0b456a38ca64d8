import { lanAddresses } from '../tls/addresses'
import { type AdvertTxt, nameFromInstanceLabel, orderAddresses, parseTxt, sanitizeName } from './sanitize'

/** DNS-SD service type of sharedLLM hosts. */
export const SERVICE_TYPE = 'sharedllm'
export const SERVICE_DOMAIN = `_${SERVICE_TYPE}._tcp.local`

/** The parts of a multicast-dns record that discovery reads. */
export interface DnsRecord {
  name: string
  type: string
  ttl?: number
  data?: unknown
}

export interface DnsPacket {
  answers?: DnsRecord[]
  additionals?: DnsRecord[]
}

/** One service instance in a response, before validation. */
export interface RawAdvert {
  fqdn: string
  /** The instance label, e.g. `kitchen-pc (1a2b3c4d)`. */
  label: string
  port: number
  target: string
  txt: unknown
  addresses: string[]
  /** The address the packet came from. */
  source: string | null
}

export interface ParsedResponse {
  adverts: RawAdvert[]
  /** Instance fqdns whose PTR came with TTL 0: the host said goodbye. */
  goodbyes: string[]
  /** Instances named by a PTR whose SRV or TXT was missing: query them. */
  incomplete: string[]
}

/** Bounds per packet, so one hostile packet cannot make discovery do unbounded work. */
const MAX_RECORDS = 256
const MAX_INSTANCES = 16

const lower = (s: unknown) => (typeof s === 'string' ? s.toLowerCase() : '')

/**
 * Picks the sharedLLM services out of an mDNS response. Pure: the caller decides what a sighting means.
 * The advertised host name is only used to find the A/AAAA records in the same packet.
 */
export function parseResponse(packet: DnsPacket, source: string | null): ParsedResponse {
  const records = [...(packet.answers ?? []), ...(packet.additionals ?? [])]
    .slice(0, MAX_RECORDS)
    .filter((r): r is DnsRecord => !!r && typeof r.name === 'string' && typeof r.type === 'string')
  const out: ParsedResponse = { adverts: [], goodbyes: [], incomplete: [] }
  const seen = new Set<string>()
  for (const ptr of records) {
    if (ptr.type !== 'PTR' || lower(ptr.name) !== SERVICE_DOMAIN || typeof ptr.data !== 'string') continue
    const fqdn = ptr.data
    const key = fqdn.toLowerCase()
    if (!key.endsWith(`.${SERVICE_DOMAIN}`) || seen.has(key)) continue
    seen.add(key)
    if (seen.size > MAX_INSTANCES) break
    if (ptr.ttl === 0) {
      out.goodbyes.push(fqdn)
      continue
    }
    const srv = records.find((r) => r.type === 'SRV' && lower(r.name) === key && (r.ttl ?? 1) > 0)
    const txt = records.find((r) => r.type === 'TXT' && lower(r.name) === key && (r.ttl ?? 1) > 0)
    const srvData = srv?.data as { port?: unknown; target?: unknown } | undefined
    if (!srvData || typeof srvData.port !== 'number' || typeof srvData.target !== 'string' || !txt) {
      out.incomplete.push(fqdn)
      continue
    }
    const target = srvData.target.toLowerCase()
    const addresses = records
      .filter((r) => (r.type === 'A' || r.type === 'AAAA') && lower(r.name) === target && (r.ttl ?? 1) > 0)
      .map((r) => r.data)
      .filter((a): a is string => typeof a === 'string')
    out.adverts.push({
      fqdn,
      label: fqdn.slice(0, fqdn.length - SERVICE_DOMAIN.length - 1),
      port: srvData.port,
      target: srvData.target,
      txt: txt.data,
      addresses,
      source,
    })
  }
  return out
}

/** A validated advert of another sharedLLM host. */
export interface Sighting {
  fqdn: string
  instance_id: string
  name: string
  version: string | null
  port: number
  /** Resolved addresses, the packet's source first; never the advertised host name. */
  addresses: string[]
  auth: string | null
  extra: AdvertTxt['extra']
}

/**
 * Validates a raw advert: a valid instance id in TXT, a usable port and at least one unicast address.
 * The name comes from TXT `name`, else the instance label, sanitised either way.
 */
export function toSighting(raw: RawAdvert, own: ReadonlySet<string> = ownAddresses()): Sighting | null {
  const txt = parseTxt(raw.txt)
  if (!txt) return null
  const port =
    txt.api_port ?? (Number.isInteger(raw.port) && raw.port > 0 && raw.port < 65536 ? raw.port : null)
  if (port === null) return null
  const addresses = orderAddresses(raw.addresses, raw.source, 8, own)
  if (addresses.length === 0) return null
  const label = nameFromInstanceLabel(raw.label).replace(/\s*\([0-9a-f]{8}\)$/i, '')
  const name = txt.name || label || sanitizeName(`sharedLLM ${txt.instance_id.slice(0, 8)}`)
  return {
    fqdn: raw.fqdn,
    instance_id: txt.instance_id,
    name,
    version: txt.version,
    port,
    addresses,
    auth: txt.auth,
    extra: txt.extra,
  }
}

/** This machine's own LAN addresses: an advert naming one is not another host there. */
export function ownAddresses(): Set<string> {
  return new Set(lanAddresses())
}

/** The instance label this host advertises: its name and the start of its id, within DNS's 63 bytes. */
export function instanceLabel(name: string, instanceId: string): string {
  const suffix = ` (${instanceId.replace(/-/g, '').slice(0, 8)})`
  let base = sanitizeName(name, 40).replace(/\./g, '-') || 'sharedLLM'
  while (Buffer.byteLength(base + suffix) > 63) base = Array.from(base).slice(0, -1).join('')
  return base + suffix
}

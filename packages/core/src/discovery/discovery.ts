import { hostname } from 'node:os'
import { errorMessage } from '../errors'
import { MdnsAgent } from './mdns'
import { type DnsPacket, instanceLabel, parseResponse, toSighting } from './records'
import { DiscoveryRegistry, type DiscoveryRegistryOptions } from './registry'
import { sanitizeName } from './sanitize'

/** The registry's options (what sightings are written to), plus how to advertise and browse. */
export interface DiscoveryOptions extends DiscoveryRegistryOptions {
  version: string
  apiPort: () => number
  /** Extra TXT entries, e.g. the HTTPS port and CA fingerprint. Keys are lowercased by DNS-SD. */
  txt?: () => Record<string, string>
  /** Bind address for multicast. @default all interfaces */
  interface?: string
  /** Name advertised to other hosts. @default the machine's hostname */
  name?: () => string
  /** How often to ask the LAN for sharedLLM hosts; every answer refreshes last_seen. @default 30000 */
  queryIntervalMs?: number
  /** A host not heard from for this long is marked offline (the SRV/A record TTL). @default 120000 */
  expireAfterMs?: number
}

/** Instances followed at once; a LAN has a handful, a flood of made-up names is cut here. */
const MAX_TRACKED = 1024

interface Tracked {
  instanceId: string
  lastSeen: number
}

/**
 * Advertises this host as `_sharedllm._tcp` and browses for others while the `mdns_enabled` setting is on,
 * following the setting live. Every failure is logged and emitted as `discovery_error`; nothing throws out
 * of the background work.
 */
export class Discovery {
  private readonly registry: DiscoveryRegistry
  private agent: MdnsAgent | undefined
  private timers: NodeJS.Timeout[] = []
  private readonly tracked = new Map<string, Tracked>()
  private readonly queried = new Map<string, number>()
  private unsubscribe: (() => void) | undefined
  private ops: Promise<void> = Promise.resolve()
  private readonly queryIntervalMs: number
  private readonly expireAfterMs: number

  constructor(private readonly o: DiscoveryOptions) {
    this.registry = new DiscoveryRegistry(o)
    this.queryIntervalMs = o.queryIntervalMs ?? 30_000
    this.expireAfterMs = o.expireAfterMs ?? 120_000
  }

  get running(): boolean {
    return this.agent !== undefined
  }

  /** Starts if `mdns_enabled` is on and follows the setting (and `api_port`) from then on. */
  async start(): Promise<void> {
    this.unsubscribe ??= this.o.bus.on('setting_changed', ({ key, value }) => {
      if (key === 'mdns_enabled') this.serial(() => (value ? this.enable() : this.disable()))
      else if (key === 'api_port' && this.running) this.serial(() => this.republish())
    })
    await this.serial(() => (this.o.settings.get('mdns_enabled') ? this.enable() : Promise.resolve()))
  }

  async stop(): Promise<void> {
    this.unsubscribe?.()
    this.unsubscribe = undefined
    await this.serial(() => this.disable())
  }

  private serial(fn: () => Promise<void>): Promise<void> {
    const run = this.ops.then(fn).catch((err) => this.report('discovery', err))
    this.ops = run
    return run
  }

  private async enable(): Promise<void> {
    if (this.agent) return
    const agent = new MdnsAgent({
      interface: this.o.interface,
      onResponse: (packet, source) => this.onResponse(packet, source),
      onError: (err) => this.report('mDNS socket', err),
    })
    this.agent = agent
    // Browsing goes on even when advertising fails (no usable port yet): a later api_port change retries.
    this.publish(agent)
    agent.queryServices()
    this.timers.push(setInterval(() => this.agent?.queryServices(), this.queryIntervalMs))
    const sweepMs = Math.max(50, Math.min(this.queryIntervalMs, Math.floor(this.expireAfterMs / 4)))
    this.timers.push(setInterval(() => this.expire(), sweepMs))
    for (const t of this.timers) t.unref()
    this.o.log.info({ instance_id: this.o.instanceId }, 'mDNS discovery on')
  }

  private async disable(): Promise<void> {
    const agent = this.agent
    if (!agent) return
    this.agent = undefined
    for (const t of this.timers) clearInterval(t)
    this.timers = []
    await agent.destroy()
    // Without mDNS we can no longer vouch for anyone being on the LAN.
    const gone = new Set([...this.tracked.values()].map((t) => t.instanceId))
    this.tracked.clear()
    this.queried.clear()
    for (const id of gone) await this.registry.gone(id).catch((err) => this.report('mark offline', err))
    this.o.log.info({}, 'mDNS discovery off')
  }

  private async republish(): Promise<void> {
    const agent = this.agent
    if (!agent) return
    await agent.unpublish()
    this.publish(agent)
  }

  private publish(agent: MdnsAgent): void {
    const ad = this.advertisement()
    if (!Number.isInteger(ad.port) || ad.port < 1 || ad.port > 65535) {
      this.report('advertising', new Error(`the API port ${ad.port} cannot be advertised`))
      return
    }
    try {
      agent.publish(ad)
    } catch (err) {
      this.report('advertising', err)
    }
  }

  private advertisement() {
    const name = sanitizeName(this.o.name?.() ?? hostname()) || 'sharedLLM'
    const port = this.o.apiPort()
    const txt: Record<string, string> = {}
    for (const [k, v] of Object.entries(this.o.txt?.() ?? {})) txt[k.toLowerCase()] = v
    Object.assign(txt, {
      id: this.o.instanceId,
      v: this.o.version,
      port: String(port),
      auth: 'required',
      name,
    })
    return { label: instanceLabel(name, this.o.instanceId), port, txt }
  }

  private onResponse(packet: DnsPacket, source: string | null): void {
    let parsed: ReturnType<typeof parseResponse>
    try {
      parsed = parseResponse(packet, source)
    } catch (err) {
      this.o.log.debug({ err }, 'mDNS: unreadable response')
      return
    }
    for (const fqdn of parsed.goodbyes) this.goodbye(fqdn)
    for (const fqdn of parsed.incomplete) this.askFor(fqdn)
    for (const raw of parsed.adverts) {
      const s = toSighting(raw)
      if (!s) {
        this.o.log.debug({ fqdn: raw.fqdn }, 'mDNS: ignoring an advert without a valid id, port or address')
        continue
      }
      if (s.instance_id === this.o.instanceId) continue
      const key = s.fqdn.toLowerCase()
      if (!this.tracked.has(key) && this.tracked.size >= MAX_TRACKED) continue
      // Tracked before the store work, so a goodbye that arrives meanwhile is queued after it.
      this.tracked.set(key, { instanceId: s.instance_id, lastSeen: Date.now() })
      this.registry.seen(s).then(
        (outcome) => {
          // Not recorded: forget it, so its next advert tries again and no offline event is sent for it.
          if (outcome === 'rate_limited') this.tracked.delete(key)
        },
        (err) => {
          this.tracked.delete(key)
          this.report(`recording '${s.name}'`, err)
        },
      )
    }
  }

  private goodbye(fqdn: string): void {
    const key = fqdn.toLowerCase()
    const t = this.tracked.get(key)
    if (!t) return
    this.tracked.delete(key)
    if ([...this.tracked.values()].some((o) => o.instanceId === t.instanceId)) return
    this.registry.gone(t.instanceId).catch((err) => this.report('mark offline', err))
  }

  /** Asks for an instance's SRV/TXT at most once every 10 s (a responder that split its answer). */
  private askFor(fqdn: string): void {
    const now = Date.now()
    if ((this.queried.get(fqdn) ?? 0) > now - 10_000 || this.queried.size > 256) return
    this.queried.set(fqdn, now)
    this.agent?.query(fqdn, 'ANY')
  }

  private expire(): void {
    const cutoff = Date.now() - this.expireAfterMs
    for (const [fqdn, t] of this.tracked) if (t.lastSeen < cutoff) this.goodbye(fqdn)
    for (const [fqdn, at] of this.queried) if (at < Date.now() - 10_000) this.queried.delete(fqdn)
  }

  private report(what: string, err: unknown): void {
    const message = `${what}: ${errorMessage(err)}`
    this.o.log.warn({ err }, `mDNS: ${message}`)
    this.o.bus.emit('discovery_error', { message })
  }
}

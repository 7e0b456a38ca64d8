import { Bonjour, type Service } from 'bonjour-service'
import { type DnsPacket, SERVICE_DOMAIN, SERVICE_TYPE } from './records'

/** The multicast-dns instance inside bonjour-service (untyped there). */
interface MulticastDns {
  on(event: 'response', listener: (packet: DnsPacket, rinfo: { address: string }) => void): void
  on(event: 'error' | 'warning', listener: (err: Error) => void): void
  removeListener(event: string, listener: (...args: never[]) => void): void
  query(name: string, type: string, cb?: (err?: Error | null) => void): void
}

export interface MdnsAgentOptions {
  /** Bind/multicast interface address. @default all interfaces */
  interface?: string
  onResponse: (packet: DnsPacket, source: string | null) => void
  onError: (err: Error) => void
}

export interface Advertisement {
  label: string
  port: number
  txt: Record<string, string>
}

/**
 * One mDNS socket: publishes this host's service and hands every response to `onResponse`. Browsing is
 * done on raw responses (not bonjour's Browser) so that every re-announcement refreshes last_seen and
 * expiry stays under our control.
 */
export class MdnsAgent {
  private readonly bonjour: Bonjour
  private readonly mdns: MulticastDns
  private service: Service | undefined
  private readonly onResponse: (packet: DnsPacket, rinfo: { address: string }) => void
  private destroyed = false

  constructor(o: MdnsAgentOptions) {
    // bonjour passes its options to multicast-dns, whose `interface` its types do not list.
    const opts = (o.interface ? { interface: o.interface } : {}) as ConstructorParameters<typeof Bonjour>[0]
    this.bonjour = new Bonjour(opts, (err: Error) => o.onError(err))
    this.mdns = (this.bonjour as unknown as { server: { mdns: MulticastDns } }).server.mdns
    // multicast-dns emits 'error' for bind failures: without a listener Node would throw and crash the host.
    this.mdns.on('error', (err) => o.onError(err))
    this.mdns.on('warning', () => {})
    this.onResponse = (packet, rinfo) => o.onResponse(packet, rinfo?.address ?? null)
    this.mdns.on('response', this.onResponse)
  }

  publish(ad: Advertisement): void {
    this.service = this.bonjour.publish({ name: ad.label, type: SERVICE_TYPE, port: ad.port, txt: ad.txt })
  }

  /** Sends goodbyes (TTL 0) for the published service. */
  unpublish(timeoutMs = 1000): Promise<void> {
    const service = this.service
    this.service = undefined
    if (!service) return Promise.resolve()
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, timeoutMs)
      service.stop?.(() => {
        clearTimeout(timer)
        resolve()
      })
    })
  }

  queryServices(): void {
    this.query(SERVICE_DOMAIN, 'PTR')
  }

  query(name: string, type: string): void {
    if (this.destroyed) return
    this.mdns.query(name, type, () => {})
  }

  async destroy(): Promise<void> {
    if (this.destroyed) return
    await this.unpublish()
    this.destroyed = true
    this.mdns.removeListener('response', this.onResponse as (...args: never[]) => void)
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 1000)
      this.bonjour.destroy(() => {
        clearTimeout(timer)
        resolve()
      })
    })
  }
}

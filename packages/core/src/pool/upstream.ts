import type { ClientRequest, OutgoingHttpHeaders } from 'node:http'
import { Agent, request } from 'node:https'
import { baseUrl } from '../discovery/peer-client'
import type { OllamaTarget } from '../ollama/client'
import { tlsOptionsForPinnedCa } from '../tls/pin'

export interface PeerUpstreamOptions {
  address: string
  httpsPort: number
  caPem: string
  caFingerprint: string
  /** The device key this host holds on the peer. */
  deviceKey: string
  /** A connection (TCP and TLS) not made within this is an error (so failover moves on). @default 3000 */
  connectTimeoutMs?: number
}

/**
 * A peer's gateway as the proxy's upstream: HTTPS only, trusting only the peer's pinned CA (the host name
 * check still applies), our device key there as the bearer token, on kept-alive TLS connections (a
 * handshake per request would cost more than the routing itself).
 */
export class PeerUpstream {
  readonly key: string
  private readonly agent: Agent
  private readonly target: OllamaTarget
  private readonly connectTimeoutMs: number

  constructor(private readonly o: PeerUpstreamOptions) {
    // Throws CERTIFICATE_MISMATCH before any connection when the stored CA is not the pinned one.
    const tls = tlsOptionsForPinnedCa(o.caPem, o.caFingerprint)
    this.agent = new Agent({ keepAlive: true, maxSockets: 64, ...tls })
    const base = baseUrl(o.address, o.httpsPort, 'https')
    const u = new URL(base)
    this.target = { base, protocol: 'https:', hostname: o.address, port: o.httpsPort, host: u.host }
    this.key = PeerUpstream.keyOf(o)
    this.connectTimeoutMs = o.connectTimeoutMs ?? 3000
  }

  static keyOf(o: PeerUpstreamOptions): string {
    return [o.address, o.httpsPort, o.caFingerprint, o.deviceKey].join('|')
  }

  open(
    method: string,
    path: string,
    headers: OutgoingHttpHeaders,
  ): { req: ClientRequest; target: OllamaTarget } {
    const req = request({
      protocol: 'https:',
      hostname: this.o.address,
      port: this.o.httpsPort,
      method,
      path,
      headers: { ...headers, host: this.target.host, authorization: `Bearer ${this.o.deviceKey}` },
      agent: this.agent,
    })
    req.setNoDelay(true)
    req.once('socket', (socket) => {
      if (!socket.connecting) return
      const timer = setTimeout(
        () => req.destroy(Object.assign(new Error('connect timeout'), { code: 'ETIMEDOUT' })),
        this.connectTimeoutMs,
      )
      // The TLS handshake counts too: a stopped process whose kernel still accepts connections never makes it.
      socket.once('secureConnect', () => clearTimeout(timer))
      socket.once('close', () => clearTimeout(timer))
    })
    return { req, target: this.target }
  }

  /** Closes every connection, in use or not (the peer is gone, or this host stops). */
  close(): void {
    this.agent.destroy()
  }

  /**
   * Replaced by another upstream (the peer answered at another address): the answers still streaming
   * finish on their connections, which then close; the idle ones close now.
   */
  retire(): void {
    this.agent.maxFreeSockets = 0
    for (const sockets of Object.values(this.agent.freeSockets))
      for (const socket of sockets ?? []) socket.destroy()
  }
}

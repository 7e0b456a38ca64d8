import { createServer, type Server, type ServerOptions } from 'node:http'
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https'
import type { AddressInfo } from 'node:net'
import { networkInterfaces } from 'node:os'
import type { Hub } from '@sharedllm/core'
import { type AppOptions, createApp, type SharedLLMApp } from './app'
import type { HostTls } from './tls'

export interface ListenOptions extends Omit<AppOptions, 'tls'> {
  /** @default the api_port setting (8080); 0 picks a free port */
  port?: number
  /** Bind address. @default '0.0.0.0' (every IPv4 interface: the point is to serve the LAN) */
  host?: string
  /** How long open requests (streams, pulls) may run on after close() before they are cut. @default 25_000 */
  drainMs?: number
  /** A request on any route must arrive in full (headers and body) within this many ms. @default 300_000 */
  requestTimeoutMs?: number
  /**
   * Also serve HTTPS (same app, same WebSocket) with the host certificates, on `port` (0 picks a free one).
   * A reissued certificate is applied to new connections without a restart.
   */
  https?: { tls: HostTls; port: number }
}

export interface RunningServer {
  app: SharedLLMApp
  server: Server
  port: number
  host: string
  /** http://address:port for loopback and every LAN address this server answers on. */
  urls: string[]
  /** The HTTPS listener, when `https` was given. */
  https?: { server: HttpsServer; port: number; urls: string[] }
  /**
   * Graceful stop: stops accepting, closes WebSockets with 1001, lets open requests finish within
   * `drainMs`, then cuts what is left. Does not stop the hub (nor the HostTls timers).
   */
  close(): Promise<void>
}

/** The addresses a person can type: loopback first, then LAN IPv4, then global IPv6. */
export function reachableUrls(host: string, port: number, scheme: 'http' | 'https' = 'http'): string[] {
  const wildcard = host === '0.0.0.0' || host === '::' || host === ''
  if (!wildcard) return [`${scheme}://${host.includes(':') ? `[${host}]` : host}:${port}`]
  const urls = [`${scheme}://localhost:${port}`]
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) {
      if (a.internal) continue
      if (a.family === 'IPv4') urls.push(`${scheme}://${a.address}:${port}`)
      else if (host === '::' && !a.address.startsWith('fe80')) urls.push(`${scheme}://[${a.address}]:${port}`)
    }
  }
  return urls
}

/**
 * Every request must arrive in full within `requestTimeout` (the gateway's bodies included; /api has its own
 * 60 s deadline in the app). Node times only the request, never the answer, so streams are not cut.
 */
function serverOptions(requestTimeoutMs: number): ServerOptions {
  return {
    requestTimeout: requestTimeoutMs,
    headersTimeout: Math.min(30_000, requestTimeoutMs),
    keepAliveTimeout: 5_000,
    connectionsCheckingInterval: Math.min(5_000, Math.max(100, Math.floor(requestTimeoutMs / 4))),
  }
}

async function bind(server: Server | HttpsServer, port: number, host: string): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => {
      server.off('error', reject)
      resolve()
    })
  })
  return (server.address() as AddressInfo).port
}

/** Starts the HTTP server (and the HTTPS one, when asked) for a started hub. */
export async function listen(hub: Hub, options: ListenOptions = {}): Promise<RunningServer> {
  const tls = options.https?.tls
  const app = createApp(hub, { ...options, ...(tls ? { tls } : {}) })
  const SERVER_OPTIONS = serverOptions(options.requestTimeoutMs ?? 300_000)
  const server = createServer(SERVER_OPTIONS, app)
  // --https-only: no WebSocket over plain HTTP (an upgrade there reaches the app, which refuses it).
  if (!options.httpsOnly) app.ws.attach(server)
  const port = options.port ?? hub.settings.get('api_port')
  const host = options.host ?? '0.0.0.0'
  const actual = await bind(server, port, host)
  server.on('error', (err) => hub.log.error({ err }, 'http server error'))

  let secure: { server: HttpsServer; port: number; urls: string[] } | undefined
  let offReissue: (() => void) | undefined
  if (options.https && tls) {
    // The chain (leaf + CA), not the leaf alone: clients that pin the CA's key must be sent the CA.
    const s = createHttpsServer(
      { ...SERVER_OPTIONS, cert: tls.certs.certChainPem, key: tls.certs.keyPem },
      app,
    )
    app.ws.attach(s)
    let httpsPort: number
    try {
      httpsPort = await bind(s, options.https.port, host)
    } catch (err) {
      await new Promise<void>((resolve) => server.close(() => resolve()))
      await app.ws.close()
      throw err
    }
    s.on('error', (err) => hub.log.error({ err }, 'https server error'))
    // A failed handshake (a phone without the CA) is normal: not worth more than debug.
    s.on('tlsClientError', (err) => hub.log.debug({ err: err.message }, 'TLS handshake failed'))
    tls.port = httpsPort
    tls.httpPort = actual
    offReissue = tls.onReissue((certs) => s.setSecureContext({ cert: certs.certChainPem, key: certs.keyPem }))
    secure = { server: s, port: httpsPort, urls: reachableUrls(host, httpsPort, 'https') }
  }

  const drainMs = options.drainMs ?? 25_000
  let closing: Promise<void> | undefined
  const drain = async (srv: Server | HttpsServer) => {
    const closed = new Promise<void>((resolve) => srv.close(() => resolve()))
    srv.closeIdleConnections()
    const cut = setTimeout(() => srv.closeAllConnections(), drainMs)
    // Keep-alive sockets that go idle after their last answer are closed as they do.
    const idle = setInterval(() => srv.closeIdleConnections(), 250)
    await closed
    clearTimeout(cut)
    clearInterval(idle)
  }

  const close = () => {
    closing ??= (async () => {
      offReissue?.()
      const done = Promise.all([drain(server), ...(secure ? [drain(secure.server)] : [])])
      await app.ws.close()
      await done
    })()
    return closing
  }
  return {
    app,
    server,
    port: actual,
    host,
    urls: reachableUrls(host, actual),
    ...(secure ? { https: secure } : {}),
    close,
  }
}

import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { networkInterfaces } from 'node:os'
import type { Hub } from '@sharedllm/core'
import { type AppOptions, createApp, type SharedLLMApp } from './app'

export interface ListenOptions extends AppOptions {
  /** @default the api_port setting (8080); 0 picks a free port */
  port?: number
  /** Bind address. @default '0.0.0.0' (every IPv4 interface: the point is to serve the LAN) */
  host?: string
  /** How long open requests (streams, pulls) may run on after close() before they are cut. @default 25_000 */
  drainMs?: number
}

export interface RunningServer {
  app: SharedLLMApp
  server: Server
  port: number
  host: string
  /** http://address:port for loopback and every LAN address this server answers on. */
  urls: string[]
  /**
   * Graceful stop: stops accepting, closes WebSockets with 1001, lets open requests finish within
   * `drainMs`, then cuts what is left. Does not stop the hub.
   */
  close(): Promise<void>
}

/** The addresses a person can type: loopback first, then LAN IPv4, then global IPv6. */
export function reachableUrls(host: string, port: number): string[] {
  const wildcard = host === '0.0.0.0' || host === '::' || host === ''
  if (!wildcard) return [`http://${host.includes(':') ? `[${host}]` : host}:${port}`]
  const urls = [`http://localhost:${port}`]
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) {
      if (a.internal) continue
      if (a.family === 'IPv4') urls.push(`http://${a.address}:${port}`)
      else if (host === '::' && !a.address.startsWith('fe80')) urls.push(`http://[${a.address}]:${port}`)
    }
  }
  return urls
}

/** Starts the HTTP server for a started hub. */
export async function listen(hub: Hub, options: ListenOptions = {}): Promise<RunningServer> {
  const app = createApp(hub, options)
  const server = createServer({ requestTimeout: 0, headersTimeout: 30_000, keepAliveTimeout: 5_000 }, app)
  app.ws.attach(server)
  const port = options.port ?? hub.settings.get('api_port')
  const host = options.host ?? '0.0.0.0'
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => {
      server.off('error', reject)
      resolve()
    })
  })
  server.on('error', (err) => hub.log.error({ err }, 'http server error'))
  const actual = (server.address() as AddressInfo).port
  const drainMs = options.drainMs ?? 25_000
  let closing: Promise<void> | undefined

  const close = () => {
    closing ??= (async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()))
      server.closeIdleConnections()
      await app.ws.close()
      const cut = setTimeout(() => server.closeAllConnections(), drainMs)
      // Keep-alive sockets that go idle after their last answer are closed as they do.
      const idle = setInterval(() => server.closeIdleConnections(), 250)
      await closed
      clearTimeout(cut)
      clearInterval(idle)
    })()
    return closing
  }
  return { app, server, port: actual, host, urls: reachableUrls(host, actual), close }
}

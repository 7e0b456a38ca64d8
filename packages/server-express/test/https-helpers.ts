import { mkdtemp, rm } from 'node:fs/promises'
import type { IncomingHttpHeaders } from 'node:http'
import { request } from 'node:https'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createHub, type Hub, type HubOptions, silentLogger } from '@sharedllm/core'
import { listen, type RunningServer } from '../src/listen'
import { HostTls, type HostTlsOptions } from '../src/tls'
import { ADMIN_SECRET, writePwa } from './helpers'

export interface HttpsHarness {
  hub: Hub
  tls: HostTls
  server: RunningServer
  dir: string
  /** `https://localhost:<https port>` */
  httpsUrl: string
  /** `http://127.0.0.1:<http port>` */
  httpUrl: string
  cleanup(): Promise<void>
}

/** A real hub (SQLite in a temp dir) served by `listen()` over HTTP and HTTPS on loopback. */
export async function startHttps(
  opts: { hub?: HubOptions; tls?: Partial<HostTlsOptions>; httpsOnly?: boolean } = {},
): Promise<HttpsHarness> {
  const dir = await mkdtemp(join(tmpdir(), 'sllm-https-'))
  const pwaDir = join(dir, 'pwa')
  await writePwa(pwaDir)
  const hub = createHub({
    dataDir: join(dir, 'data'),
    logger: silentLogger,
    capacityMb: () => 65536,
    providers: false,
    ollama: false,
    discovery: false,
    ...opts.hub,
  })
  await hub.start()
  await hub.admin.ensureSecret(ADMIN_SECRET)
  const tls = await HostTls.create({ dataDir: hub.dataDir, ...opts.tls })
  const server = await listen(hub, {
    port: 0,
    host: '127.0.0.1',
    pwaDir,
    https: { tls, port: 0 },
    ws: { heartbeatMs: 60_000 },
    ...(opts.httpsOnly ? { httpsOnly: true } : {}),
  })
  return {
    hub,
    tls,
    server,
    dir,
    httpsUrl: `https://localhost:${server.https!.port}`,
    httpUrl: `http://127.0.0.1:${server.port}`,
    async cleanup() {
      tls.stop()
      await server.close()
      await hub.stop()
      await rm(dir, { recursive: true, force: true })
    },
  }
}

export interface Answer {
  status: number
  headers: IncomingHttpHeaders
  body: string
}

/** One HTTPS request that trusts only `ca` (never the system store), on its own connection. */
export function httpsRequest(
  url: string,
  o: { ca?: string; method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      { method: o.method ?? 'GET', headers: o.headers, ca: o.ca, agent: false },
      (res) => {
        let body = ''
        res.setEncoding('utf8')
        res.on('data', (c: string) => (body += c))
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }))
        res.on('error', reject)
      },
    )
    req.on('error', reject)
    req.end(o.body)
  })
}

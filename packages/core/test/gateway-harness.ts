import { once } from 'node:events'
import { mkdtemp, rm } from 'node:fs/promises'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  createGatewayHandler,
  createHub,
  type GatewayOptions,
  type Hub,
  type HubOptions,
  type RoleInput,
  silentLogger,
} from '../src/index'
import { type FakeOllama, type FakeOllamaOptions, startFakeOllama } from '../src/testing/index'

export const ADMIN_SECRET = 'gateway-admin-secret-0123456789'

export interface GatewayHarness {
  hub: Hub
  /** The fake Ollama (absent with `upstream`). */
  fake: FakeOllama | undefined
  /** `http://127.0.0.1:<port>` of the gateway. */
  url: string
  server: Server
  /** A device approved with `roleId`, with its claimed key. */
  device(name: string, roleId?: string): Promise<{ deviceId: string; key: string }>
  role(input: RoleInput): Promise<string>
  close(): Promise<void>
}

let ipCounter = 10

/**
 * A real hub (SQLite in a temp dir) + core's gateway handler on a plain node:http server (no Express) on a
 * real port + the fake Ollama as a process.
 */
export async function startGateway(
  opts: {
    fake?: FakeOllamaOptions | false
    upstream?: string
    hub?: HubOptions
    gateway?: GatewayOptions
  } = {},
): Promise<GatewayHarness> {
  const fake = opts.fake === false ? undefined : await startFakeOllama(opts.fake ?? {})
  const dir = await mkdtemp(join(tmpdir(), 'sllm-gateway-'))
  const hub = createHub({
    dataDir: join(dir, 'data'),
    logger: silentLogger,
    capacityMb: () => 65536,
    providers: false,
    discovery: false,
    ollama: false,
    ...opts.hub,
    settings: { auto_start_ollama: false, ...opts.hub?.settings },
  })
  await hub.start()
  // Sized for round one's 4096 MiB user role (the model lists below depend on it); the built-in is 8192 now.
  await hub.roles.update('role-user', { max_memory_mb: 4096 })
  // Stored, not an override, so a test can change it like the owner would.
  await hub.settings.set('ollama_host', opts.upstream ?? fake?.url ?? 'http://127.0.0.1:9')
  await hub.admin.ensureSecret(ADMIN_SECRET)
  const server = createServer(createGatewayHandler(hub, opts.gateway))
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  return {
    hub,
    fake,
    url,
    server,
    async device(name, roleId = 'role-user') {
      const ip = `192.168.7.${ipCounter++ % 250}`
      const joined = await hub.access.join({ name }, ip)
      await hub.devices.approve(joined.device_id, roleId)
      const claim = await hub.access.claim(joined.request_id, joined.claim_secret, ip)
      return { deviceId: joined.device_id, key: claim.device_key as string }
    },
    async role(input) {
      return (await hub.roles.create(input)).id
    },
    async close() {
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
      await hub.stop()
      await fake?.stop()
      await rm(dir, { recursive: true, force: true })
    },
  }
}

/** The user agent of the test's own requests: the fake's log shows which requests the gateway forwarded. */
export const TEST_UA = 'sharedllm-gateway-test'

export function bearer(key: string): Record<string, string> {
  return { Authorization: `Bearer ${key}` }
}

/** A parsed answer; tests read into it freely and let assertions fail loudly. */
// biome-ignore lint/suspicious/noExplicitAny: test-side view of arbitrary JSON answers
export type Json = any

export interface Answer {
  status: number
  headers: Headers
  text: string
  json: () => Json
}

/** POSTs JSON to the gateway; returns status, headers and the body text. */
export async function post(
  url: string,
  key: string | null,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<Answer> {
  const res = await fetch(url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      'user-agent': TEST_UA,
      ...(key ? bearer(key) : {}),
      ...headers,
    },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  })
  const text = await res.text()
  return { status: res.status, headers: res.headers, text, json: () => JSON.parse(text) }
}

export async function get(url: string, key: string | null): Promise<Answer> {
  const res = await fetch(url, { headers: { 'user-agent': TEST_UA, ...(key ? bearer(key) : {}) } })
  const text = await res.text()
  return { status: res.status, headers: res.headers, text, json: () => JSON.parse(text) }
}

export interface MockUpstream {
  url: string
  server: Server
  close(): Promise<void>
}

/** A tiny in-process upstream, for what the fake cannot show (the moment a socket closes, a cut stream). */
export async function startMockUpstream(handler: Parameters<typeof createServer>[1]): Promise<MockUpstream> {
  const server = createServer(handler)
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    server,
    async close() {
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}

/** A mock upstream whose handler gets the request's JSON body ({} when empty). */
export function startJsonUpstream(
  handler: (req: IncomingMessage, res: ServerResponse, body: Json) => void,
): Promise<MockUpstream> {
  return startMockUpstream((req, res) => {
    const parts: Buffer[] = []
    req.on('data', (c: Buffer) => parts.push(c))
    req.on('end', () => {
      const text = Buffer.concat(parts).toString('utf8')
      handler(req, res, text ? JSON.parse(text) : {})
    })
  })
}

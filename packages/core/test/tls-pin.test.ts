import { X509Certificate } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import http from 'node:http'
import https from 'node:https'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import tls from 'node:tls'
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest'
import {
  ensureHostCertificates,
  fetchPeerCa,
  type HostCertificates,
  PeerClient,
  pinnedFetch,
  tlsOptionsForPinnedCa,
} from '../src/index'

// Two hosts with their own CAs: `trusted` is the peer as first seen; `impostor` is a reinstall or a spoof.
let dirs: string[] = []
let trusted: HostCertificates
let impostor: HostCertificates

beforeAll(async () => {
  dirs = [mkdtempSync(join(tmpdir(), 'sllm-pin-')), mkdtempSync(join(tmpdir(), 'sllm-pin-'))]
  const make = (dataDir: string) => ensureHostCertificates({ dataDir, hostname: 'peer', addresses: [] })
  ;[trusted, impostor] = await Promise.all([make(dirs[0]!), make(dirs[1]!)])
}, 30_000)

afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true })
})

const servers: Array<http.Server | tls.Server> = []
afterEach(async () => {
  for (const s of servers.splice(0)) {
    ;(s as http.Server).closeAllConnections?.()
    await new Promise((r) => s.close(r))
  }
})

async function listen<T extends http.Server | tls.Server>(server: T): Promise<number> {
  servers.push(server)
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  return (server.address() as AddressInfo).port
}

type Handler = (req: http.IncomingMessage, res: http.ServerResponse) => void

/** A real HTTPS server presenting `host`'s certificate and its CA, as the sharedLLM server does. */
function httpsServer(host: HostCertificates, handler: Handler): Promise<number> {
  return listen(https.createServer({ key: host.keyPem, cert: host.certPem + host.caCertPem }, handler))
}

const serveCa =
  (body: string | Buffer, type = 'application/x-x509-ca-cert'): Handler =>
  (_req, res) => {
    res.writeHead(200, { 'content-type': type })
    res.end(body)
  }

describe('fetchPeerCa', () => {
  test('downloads a CA over http and over unverified https, PEM or DER', async () => {
    const httpPort = await listen(http.createServer(serveCa(trusted.caCertPem)))
    const got = await fetchPeerCa(`http://127.0.0.1:${httpPort}/ca.crt`)
    expect(got.fingerprint).toBe(trusted.caFingerprintSha256)
    expect(new X509Certificate(got.pem).fingerprint256).toBe(trusted.caFingerprintSha256)

    const der = new X509Certificate(trusted.caCertPem).raw
    const httpsPort = await httpsServer(trusted, serveCa(der))
    const overTls = await fetchPeerCa(`https://127.0.0.1:${httpsPort}/ca.crt`)
    expect(overTls.fingerprint).toBe(trusted.caFingerprintSha256)
  })

  test('checks an expected fingerprint in any spelling', async () => {
    const port = await listen(http.createServer(serveCa(trusted.caCertPem)))
    const url = `http://127.0.0.1:${port}/ca.crt`
    const loose = trusted.caFingerprintSha256.replaceAll(':', '').toLowerCase()
    expect((await fetchPeerCa(url, { expectedFingerprint: loose })).fingerprint).toBe(
      trusted.caFingerprintSha256,
    )
    await expect(
      fetchPeerCa(url, { expectedFingerprint: impostor.caFingerprintSha256 }),
    ).rejects.toMatchObject({
      code: 'CERTIFICATE_MISMATCH',
    })
    await expect(fetchPeerCa(url, { expectedFingerprint: 'abc' })).rejects.toMatchObject({
      code: 'VALIDATION',
    })
  })

  test('refuses what is not a self-signed CA certificate', async () => {
    const routes: Record<string, Handler> = {
      '/leaf': serveCa(trusted.certPem),
      '/junk': serveCa('hello'),
      '/big': serveCa(Buffer.alloc(100 * 1024, 65)),
      '/missing': (_q, res) => res.writeHead(404).end(),
    }
    const port = await listen(http.createServer((req, res) => routes[req.url!]!(req, res)))
    const at = (p: string) => fetchPeerCa(`http://127.0.0.1:${port}${p}`)
    await expect(at('/leaf')).rejects.toThrow(/did not send a self-signed CA/)
    await expect(at('/junk')).rejects.toMatchObject({ code: 'UPSTREAM_ERROR' })
    await expect(at('/big')).rejects.toThrow(/more than 65536 bytes/)
    await expect(at('/missing')).rejects.toThrow(/answered 404/)
    await expect(fetchPeerCa('ftp://127.0.0.1/ca.crt')).rejects.toMatchObject({ code: 'VALIDATION' })
    await expect(fetchPeerCa('not a url')).rejects.toMatchObject({ code: 'VALIDATION' })
  })

  test('a closed port and a silent server are clear errors', async () => {
    const closed = await listen(http.createServer())
    await new Promise((r) => servers.pop()!.close(r))
    await expect(fetchPeerCa(`http://127.0.0.1:${closed}/ca.crt`)).rejects.toMatchObject({
      code: 'UPSTREAM_UNAVAILABLE',
    })
    const hung = await listen(http.createServer(() => {}))
    await expect(fetchPeerCa(`http://127.0.0.1:${hung}/ca.crt`, { timeoutMs: 150 })).rejects.toMatchObject({
      code: 'TIMEOUT',
    })
  })
})

describe('tlsOptionsForPinnedCa', () => {
  function connect(port: number, o: tls.ConnectionOptions) {
    return new Promise<tls.TLSSocket>((resolve, reject) => {
      const s = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ...o }, () => resolve(s))
      s.on('error', reject)
    })
  }
  const tlsServer = (host: HostCertificates) =>
    listen(tls.createServer({ key: host.keyPem, cert: host.certPem }, (s) => s.end()))

  test('connects to the pinned host and refuses a host with another CA', async () => {
    const pinned = tlsOptionsForPinnedCa(trusted.caCertPem, trusted.caFingerprintSha256)
    const good = await connect(await tlsServer(trusted), pinned)
    expect(good.authorized).toBe(true)
    good.destroy()
    await expect(connect(await tlsServer(impostor), pinned)).rejects.toMatchObject({
      code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
    })
  })

  test('refuses a stored CA that is not the pinned one, before connecting', () => {
    expect(() => tlsOptionsForPinnedCa(impostor.caCertPem, trusted.caFingerprintSha256)).toThrow(
      expect.objectContaining({ code: 'CERTIFICATE_MISMATCH' }),
    )
    expect(() => tlsOptionsForPinnedCa(trusted.caCertPem, 'not-a-fingerprint')).toThrow(
      expect.objectContaining({ code: 'VALIDATION' }),
    )
  })

  test('its identity check refuses a chain that ends at another CA, even when both are trusted', async () => {
    const pinned = tlsOptionsForPinnedCa(trusted.caCertPem, trusted.caFingerprintSha256)
    const port = await tlsServer(impostor)
    await expect(connect(port, { ...pinned, ca: [pinned.ca, impostor.caCertPem] })).rejects.toMatchObject({
      code: 'ERR_SHAREDLLM_CA_PIN',
    })
    // The same check on a real chain from the pinned CA passes.
    const s = await connect(await tlsServer(trusted), { ca: trusted.caCertPem })
    expect(pinned.checkServerIdentity('localhost', s.getPeerCertificate(true))).toBeUndefined()
    expect(pinned.checkServerIdentity('other.local', s.getPeerCertificate(true))).toBeInstanceOf(Error)
    s.destroy()
  })
})

describe('pinnedFetch', () => {
  const echo: Handler = (req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json', 'x-peer': 'yes' })
      res.end(
        JSON.stringify({
          method: req.method,
          url: req.url,
          type: req.headers['content-type'] ?? null,
          auth: req.headers.authorization ?? null,
          body: Buffer.concat(chunks).toString(),
        }),
      )
    })
  }

  test('speaks https to the pinned host: methods, headers, bodies, statuses', async () => {
    const port = await httpsServer(trusted, (req, res) =>
      req.url === '/empty' ? res.writeHead(204).end() : echo(req, res),
    )
    const f = pinnedFetch({ caPem: trusted.caCertPem, caFingerprint: trusted.caFingerprintSha256 })
    const base = `https://localhost:${port}`
    const get = await f(`${base}/api/me?x=1`, { headers: { authorization: 'Bearer k' } })
    expect(get.status).toBe(200)
    expect(get.headers.get('x-peer')).toBe('yes')
    expect(get.url).toBe(`${base}/api/me?x=1`)
    expect(await get.json()).toEqual({
      method: 'GET',
      url: '/api/me?x=1',
      type: null,
      auth: 'Bearer k',
      body: '',
    })
    const post = await f(new URL(`${base}/api/join`), { method: 'POST', body: '{"a":1}' })
    expect(await post.json()).toMatchObject({
      method: 'POST',
      body: '{"a":1}',
      type: 'text/plain;charset=UTF-8',
    })
    const byIp = await f(`https://127.0.0.1:${port}/ip`)
    expect(byIp.ok).toBe(true)
    await byIp.body?.cancel()
    expect((await f(`${base}/empty`)).status).toBe(204)
  })

  test('a host presenting another CA is a CERTIFICATE_MISMATCH, through PeerClient too', async () => {
    const joined = {
      request_id: 'req-1',
      claim_secret: 'secret-1234567890abcdef',
      device_id: 'dev-1',
      status: 'pending',
    }
    const reply: Handler = (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end(JSON.stringify(joined))
    }
    const f = pinnedFetch({ caPem: trusted.caCertPem, caFingerprint: trusted.caFingerprintSha256 })
    const client = new PeerClient({ fetch: f, timeoutMs: 2000 })
    const body = { name: 'laptop', platform: 'linux', instance_id: 'abcdef12-3456' }

    const goodPort = await httpsServer(trusted, reply)
    expect(await client.join(`https://127.0.0.1:${goodPort}`, body)).toEqual(joined)

    const badPort = await httpsServer(impostor, reply)
    const err = await client.join(`https://127.0.0.1:${badPort}`, body).catch((e: unknown) => e)
    expect(err).toMatchObject({ code: 'CERTIFICATE_MISMATCH', status: 502 })
    expect((err as Error).message).toContain(trusted.caFingerprintSha256)
  })

  test('refuses plain http, honours timeouts and reports unreachable hosts like fetch', async () => {
    const f = pinnedFetch({ caPem: trusted.caCertPem, caFingerprint: trusted.caFingerprintSha256 })
    await expect(f('http://127.0.0.1:1/')).rejects.toMatchObject({ code: 'VALIDATION' })
    const hung = await httpsServer(trusted, () => {})
    const client = new PeerClient({ fetch: f, timeoutMs: 150 })
    await expect(client.models(`https://127.0.0.1:${hung}`, 'sllm_key')).rejects.toMatchObject({
      code: 'TIMEOUT',
    })
    const closed = await listen(http.createServer())
    await new Promise((r) => servers.pop()!.close(r))
    await expect(f(`https://127.0.0.1:${closed}/`)).rejects.toThrow(TypeError)
    await expect(client.models(`https://127.0.0.1:${closed}`, 'sllm_key')).rejects.toMatchObject({
      code: 'UPSTREAM_UNAVAILABLE',
    })
    expect(() =>
      pinnedFetch({ caPem: impostor.caCertPem, caFingerprint: trusted.caFingerprintSha256 }),
    ).toThrow(expect.objectContaining({ code: 'CERTIFICATE_MISMATCH' }))
  })
})

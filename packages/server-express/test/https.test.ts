import { X509Certificate } from 'node:crypto'
import { request as httpRequest } from 'node:http'
import { connect, type PeerCertificate } from 'node:tls'
import { certificateSans, isServedAddress, lanAddresses } from '@sharedllm/core'

// The CA may vouch only for private ranges: a public (or documentation-range) address is left out.
const servedLan = () => lanAddresses().filter(isServedAddress)
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { WebSocket } from 'ws'
import { ADMIN, ADMIN_SECRET, approvedDevice } from './helpers'
import { type HttpsHarness, httpsRequest, startHttps } from './https-helpers'

/** The certificate chain the server presents, read with Node's tls trusting only `ca`. */
function peerChain(port: number, ca: string, servername = 'localhost'): Promise<PeerCertificate[]> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port, ca, servername }, () => {
      const chain: PeerCertificate[] = []
      let c = s.getPeerCertificate(true) as PeerCertificate & { issuerCertificate?: PeerCertificate }
      while (c && !chain.includes(c)) {
        chain.push(c)
        c = c.issuerCertificate as typeof c
      }
      s.end()
      resolve(chain)
    })
    s.on('error', reject)
  })
}

/** fetch() may not set Host; node:http may. */
function httpGet(url: string, host: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { headers: { host }, agent: false }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => (body += c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
    })
    req.on('error', reject)
    req.end()
  })
}

describe('HTTPS beside HTTP (listen with the host certificates)', () => {
  let h: HttpsHarness
  let ca: string

  beforeAll(async () => {
    h = await startHttps()
    ca = h.tls.certs.caCertPem
  })
  afterAll(() => h.cleanup())

  it('presents leaf + CA, verified by Node tls against the CA alone, covering the machine addresses', async () => {
    const chain = await peerChain(h.server.https!.port, ca)
    expect(chain.length).toBeGreaterThanOrEqual(2)
    expect(chain.at(-1)?.fingerprint256).toBe(h.tls.certs.caFingerprintSha256)
    const sans = certificateSans(new X509Certificate(chain[0]!.raw))
    expect(lanAddresses().length).toBeGreaterThan(0)
    for (const a of lanAddresses()) {
      if (isServedAddress(a)) expect(sans.ip).toContain(a)
      else expect(sans.ip).not.toContain(a)
    }
    expect(sans.dns).toContain('localhost')
    // Nothing else is trusted: without the CA the handshake fails.
    await expect(httpsRequest(`${h.httpsUrl}/healthz`)).rejects.toMatchObject({
      code: expect.stringMatching(/SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_VERIFY_LEAF_SIGNATURE/),
    })
  })

  it('serves the API over TLS: public routes, admin routes with a bearer, the PWA shell', async () => {
    const health = await httpsRequest(`${h.httpsUrl}/healthz`, { ca })
    expect(health.status).toBe(200)
    expect(JSON.parse(health.body)).toMatchObject({ ok: true })
    expect(health.headers['strict-transport-security']).toBeUndefined()
    expect((await httpsRequest(`${h.httpsUrl}/api/devices`, { ca })).status).toBe(401)
    const devices = await httpsRequest(`${h.httpsUrl}/api/devices`, { ca, headers: ADMIN })
    expect(devices.status).toBe(200)
    expect(JSON.parse(devices.body)).toHaveProperty('devices')
    const shell = await httpsRequest(`${h.httpsUrl}/some/deep/link`, { ca })
    expect(shell.status).toBe(200)
    expect(shell.body).toContain('<div id="app">')
  })

  it('/api/tls tells both listeners the HTTPS port, the CA fingerprint and URLs led by the name used', async () => {
    const port = h.server.https!.port
    const mdnsName = h.tls.certs.sans.dns.find((d) => d.endsWith('.local'))!
    const lan = servedLan()[0]
    const lanHost = lan === undefined ? mdnsName : lan.includes(':') ? `[${lan}]` : lan
    for (const [url, host, first] of [
      [`${h.httpUrl}/api/tls`, `${mdnsName}:${h.server.port}`, `https://${mdnsName}:${port}`],
      [`${h.httpUrl}/api/tls`, `127.0.0.1:${h.server.port}`, `https://${lanHost}:${port}`],
      [`${h.httpsUrl}/api/tls`, undefined, `https://${lanHost}:${port}`],
    ] as const) {
      const res = host ? await httpGet(url, host) : await httpsRequest(url, { ca })
      expect(res.status).toBe(200)
      const info = JSON.parse(res.body)
      expect(info.https_port).toBe(port)
      expect(info.http_port).toBe(h.server.port)
      expect(info.ca_fingerprint).toBe(h.tls.certs.caFingerprintSha256)
      // The name the caller used leads, but never loopback: a phone cannot open that.
      expect(info.https_urls[0]).toBe(first)
      for (const a of servedLan().filter((x) => !x.includes(':'))) {
        expect(info.https_urls).toContain(`https://${a}:${port}`)
      }
    }
  })

  it('/ca.crt and /ca.mobileconfig are public on HTTP and HTTPS with their MIME types', async () => {
    for (const base of [h.httpUrl, h.httpsUrl]) {
      const get = (path: string) =>
        base.startsWith('https')
          ? httpsRequest(base + path, { ca })
          : fetch(base + path).then(async (r) => ({
              status: r.status,
              headers: Object.fromEntries(r.headers),
              body: await r.text(),
            }))
      const crt = await get('/ca.crt')
      expect(crt.status).toBe(200)
      expect(crt.headers['content-type']).toMatch(/^application\/x-x509-ca-cert/)
      expect(crt.headers['content-disposition']).toMatch(/^attachment; filename="sharedllm-ca\.crt"/)
      const cert = new X509Certificate(crt.body)
      expect(cert.ca).toBe(true)
      expect(cert.fingerprint256).toBe(h.tls.certs.caFingerprintSha256)

      const profile = await get('/ca.mobileconfig')
      expect(profile.status).toBe(200)
      expect(profile.headers['content-type']).toMatch(/^application\/x-apple-aspen-config/)
      expect(profile.body).toContain('<string>com.apple.security.root</string>')
      // The instance id is nobody's business on the LAN (it once let a join impersonate this host).
      expect(profile.body).not.toContain(h.hub.instanceId as string)
      const id = h.tls.certs.caFingerprintSha256.replace(/:/g, '').slice(0, 16).toLowerCase()
      expect(profile.body).toContain(`<string>local.sharedllm.${id}</string>`)
      const der = cert.raw.toString('base64')
      expect(profile.body.replace(/\s+/g, '')).toContain(der)
    }
  })

  it('accepts every name the certificate covers in Host, and still refuses others', async () => {
    const { dns } = h.tls.certs.sans
    for (const name of dns) {
      const r = await httpGet(`${h.httpUrl}/healthz`, `${name}:${h.server.port}`)
      expect(r.status, name).toBe(200)
    }
    const evil = await httpGet(`${h.httpUrl}/healthz`, 'evil.example')
    expect(evil.status).toBe(403)
  })

  it('a cookie session works over HTTPS: Secure cookie, same-origin https Origin accepted, http Origin refused', async () => {
    const login = await httpsRequest(`${h.httpsUrl}/api/auth/login`, {
      ca,
      method: 'POST',
      headers: { 'content-type': 'application/json', origin: h.httpsUrl },
      body: JSON.stringify({ secret: ADMIN_SECRET }),
    })
    expect(login.status).toBeLessThan(300)
    const setCookie = String(login.headers['set-cookie'])
    expect(setCookie).toContain('Secure')
    const cookie = setCookie.split(';')[0]!
    const pair = (origin: string) =>
      httpsRequest(`${h.httpsUrl}/api/pairing`, {
        ca,
        method: 'POST',
        headers: { 'content-type': 'application/json', cookie, origin },
        body: JSON.stringify({ role_id: 'role-user' }),
      })
    expect((await pair(h.httpsUrl)).status).toBe(201)
    expect((await pair(`http://localhost:${h.server.https!.port}`)).status).toBe(403)
    expect((await pair('https://evil.example')).status).toBe(403)
  })

  it('the WebSocket works over TLS for the admin and for a device key, and checks the https Origin', async () => {
    const open = (headers: Record<string, string>, protocols: string[] = ['sharedllm'], origin?: string) =>
      new Promise<{ ok: true; first: { type: string } } | { ok: false; status: number }>((resolve) => {
        const ws = new WebSocket(`wss://localhost:${h.server.https!.port}/ws`, protocols, {
          ca,
          headers,
          ...(origin ? { origin } : {}),
        })
        ws.once('message', (data) => {
          resolve({ ok: true, first: JSON.parse(String(data)) })
          ws.close()
        })
        ws.once('unexpected-response', (_req, res) => {
          resolve({ ok: false, status: res.statusCode ?? 0 })
          ws.terminate()
        })
        ws.once('error', () => {})
      })
    expect(await open(ADMIN)).toMatchObject({ ok: true, first: { type: 'snapshot' } })
    const { key } = await approvedDevice(h.hub, 'tls-phone')
    expect(await open({}, ['sharedllm', `bearer.${key}`], h.httpsUrl)).toMatchObject({
      ok: true,
      first: { type: 'snapshot' },
    })
    expect(await open(ADMIN, ['sharedllm'], 'https://evil.example')).toEqual({ ok: false, status: 403 })
    expect(await open({}, ['sharedllm'], h.httpsUrl)).toEqual({ ok: false, status: 401 })
  })
})

describe('certificate upkeep while serving', () => {
  it('reissues when the addresses change and serves the new certificate without a restart', async () => {
    const addresses = ['192.168.77.10']
    const h = await startHttps({ tls: { addresses: () => addresses, addressPollMs: 50 } })
    try {
      h.tls.start()
      const port = h.server.https!.port
      const before = (await peerChain(port, h.tls.certs.caCertPem))[0]!
      expect(before.subjectaltname).toContain('IP Address:192.168.77.10')
      expect(before.subjectaltname).not.toContain('10.77.0.7')
      addresses.push('10.77.0.7')
      await expect
        .poll(async () => (await peerChain(port, h.tls.certs.caCertPem))[0]!.subjectaltname, {
          timeout: 10_000,
        })
        .toContain('IP Address:10.77.0.7')
      const after = (await peerChain(port, h.tls.certs.caCertPem))[0]!
      expect(after.serialNumber).not.toBe(before.serialNumber)
      // The CA stays: phones that trusted it keep trusting the new certificate.
      expect(h.tls.certs.caFingerprintSha256).toBe(new X509Certificate(h.tls.certs.caCertPem).fingerprint256)
      expect((await httpsRequest(`${h.httpsUrl}/api/tls`, { ca: h.tls.certs.caCertPem })).status).toBe(200)
    } finally {
      await h.cleanup()
    }
  })

  it('replaces an expired certificate at start', async () => {
    const long = 400 * 86_400_000
    const h = await startHttps({ tls: { now: () => new Date(Date.now() - long) } })
    const dataDir = h.hub.dataDir
    const old = h.tls.certs
    expect(old.notAfter.getTime()).toBeLessThan(Date.now())
    const { HostTls } = await import('../src/tls')
    try {
      const again = await HostTls.create({ dataDir })
      expect(again.certs.reissued).toBe(true)
      expect(again.certs.caFingerprintSha256).toBe(old.caFingerprintSha256)
      expect(again.certs.notAfter.getTime()).toBeGreaterThan(Date.now() + 300 * 86_400_000)
    } finally {
      await h.cleanup()
    }
  })

  it('a failed re-check keeps the current certificate, reports the error and throws nothing', async () => {
    const errors: unknown[] = []
    const h = await startHttps({ tls: { onError: (e) => errors.push(e) } })
    try {
      const { writeFile } = await import('node:fs/promises')
      const { join } = await import('node:path')
      await writeFile(join(h.hub.dataDir, 'tls', 'ca.crt'), 'not a certificate')
      const current = h.tls.certs
      await expect(h.tls.check('test')).resolves.toBe(current)
      expect(errors).toHaveLength(1)
      expect(errors[0]).toMatchObject({ code: 'STORE_CORRUPT' })
      expect((await httpsRequest(`${h.httpsUrl}/healthz`, { ca: current.caCertPem })).status).toBe(200)
    } finally {
      await h.cleanup()
    }
  })
})

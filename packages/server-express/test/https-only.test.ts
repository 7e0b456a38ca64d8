import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { WebSocket } from 'ws'
import { ADMIN_SECRET } from './helpers'
import { type HttpsHarness, httpsRequest, startHttps } from './https-helpers'

const auth = { Authorization: `Bearer ${ADMIN_SECRET}` }

describe('--https-only: plain HTTP serves only the join flow and the certificate', () => {
  let h: HttpsHarness
  beforeAll(async () => {
    h = await startHttps({ httpsOnly: true })
  })
  afterAll(() => h?.cleanup())

  const http = (path: string, init: RequestInit = {}) =>
    fetch(`${h.httpUrl}${path}`, { redirect: 'manual', ...init })

  it('joins, polls the claim and downloads the CA over HTTP', async () => {
    const join = await http('/api/join', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'phone' }),
    })
    expect(join.status).toBe(201)
    const { request_id, claim_secret } = (await join.json()) as { request_id: string; claim_secret: string }
    const poll = await http(`/api/join/${request_id}`, { headers: { 'x-claim-secret': claim_secret } })
    expect(await poll.json()).toMatchObject({ status: 'pending' })
    for (const path of ['/ca.crt', '/ca.mobileconfig', '/api/tls', '/healthz', '/', '/join']) {
      expect((await http(path)).status, path).toBe(200)
    }
  })

  it('refuses everything else over HTTP with 403 naming the HTTPS address, before any credential is checked', async () => {
    const refused: Array<[string, RequestInit?]> = [
      ['/api/devices', { headers: auth }],
      ['/api/settings', { headers: auth }],
      [
        '/api/auth/login',
        { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"secret":"x"}' },
      ],
      ['/api/pairing', { method: 'POST', headers: auth }],
      ['/ollama/api/tags', { headers: auth }],
      ['/v1/models', { headers: auth }],
      ['/login?token=abc'],
      ['/api/join', { method: 'GET' }],
    ]
    for (const [path, init] of refused) {
      const res = await http(path, init)
      expect(res.status, path).toBe(403)
      const body = (await res.json()) as { error: string; details?: { https_url?: string } }
      expect(body.error, path).toMatch(/over HTTPS only: use https:\/\//)
    }
    // No wrong-guess was counted: the credential never reached authentication.
    expect(h.hub.admin.backoff.retryAfter('127.0.0.1')).toBe(0)
    const ws = new WebSocket(`${h.httpUrl.replace('http', 'ws')}/ws`, ['sharedllm', `bearer.${ADMIN_SECRET}`])
    const outcome = await new Promise<string>((resolve) => {
      ws.once('open', () => resolve('open'))
      ws.once('unexpected-response', (_req, res) => resolve(`status ${res.statusCode}`))
      ws.once('error', () => resolve('error'))
    })
    ws.terminate()
    expect(outcome).not.toBe('open')
  })

  it('serves all of it over HTTPS', async () => {
    const ca = h.tls.certs.caCertPem
    expect((await httpsRequest(`${h.httpsUrl}/api/devices`, { ca, headers: auth })).status).toBe(200)
    expect((await httpsRequest(`${h.httpsUrl}/api/settings`, { ca, headers: auth })).status).toBe(200)
  })
})

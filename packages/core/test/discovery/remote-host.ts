import { randomBytes, randomUUID } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { createServer, type IncomingMessage, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'

const tags = readFileSync(new URL('./fixtures/api-tags-16-models-local.json', import.meta.url), 'utf8')

interface Request {
  id: string
  secret: string
  deviceId: string
  body: Record<string, unknown>
  status: 'pending' | 'approved' | 'denied'
  key: string | null
  claimed: boolean
}

/**
 * A real HTTP server speaking the remote side of the join API exactly as the brief for issue #7 fixes it
 * (POST /api/join → 201; GET /api/join/:id with X-Claim-Secret → key once, then 410; GET /ollama/api/tags
 * with the key), so the PeerClient is tested over the wire while the Express server is built elsewhere.
 * `misbehave` makes it answer like a broken or hostile host.
 */
export class RemoteHost {
  readonly requests = new Map<string, Request>()
  joinCalls = 0
  claimCalls = 0
  /** Every request, with the credentials it carried. */
  readonly seen: Array<{ path: string; authorization: string | null; claimSecret: string | null }> = []
  misbehave: 'none' | 'garbage' | 'huge' | 'hang' | 'no-key' | 'other-device' | 'odd-models' | 'extra-key' =
    'none'
  approveOnJoin = false
  private server: Server | undefined

  /** Listens on `port` (0: any free one); a closed host can listen again on its old port. */
  async listen(port = 0, host = '127.0.0.1'): Promise<{ address: string; port: number }> {
    this.server = createServer((req, res) => {
      void this.handle(req).then(
        ({ status, body }) => {
          if (status === 0) return // hang
          res.writeHead(status, { 'content-type': 'application/json' }).end(body)
        },
        () => res.writeHead(500).end(),
      )
    })
    await new Promise<void>((resolve) => this.server!.listen(port, host, resolve))
    return { address: host, port: (this.server.address() as AddressInfo).port }
  }

  close(): Promise<void> {
    this.server?.closeAllConnections()
    return new Promise((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()))
  }

  approveAll(): void {
    for (const r of this.requests.values()) {
      r.status = 'approved'
      r.key = `sllm_${randomBytes(32).toString('base64url')}`
    }
  }

  denyAll(): void {
    for (const r of this.requests.values()) r.status = 'denied'
  }

  private async handle(req: IncomingMessage): Promise<{ status: number; body: string }> {
    const url = new URL(req.url ?? '/', 'http://x')
    const header = (h: string | string[] | undefined) => (typeof h === 'string' ? h : null)
    this.seen.push({
      path: url.pathname,
      authorization: header(req.headers.authorization),
      claimSecret: header(req.headers['x-claim-secret']),
    })
    if (this.misbehave === 'hang') return { status: 0, body: '' }
    if (this.misbehave === 'garbage') return { status: 200, body: '{"request_id": 5, "<html>": true}' }
    if (this.misbehave === 'huge') return { status: 200, body: JSON.stringify({ pad: 'x'.repeat(200_000) }) }
    if (req.method === 'POST' && url.pathname === '/api/join') {
      this.joinCalls++
      const chunks: Buffer[] = []
      for await (const c of req) chunks.push(c as Buffer)
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>
      if (typeof body.name !== 'string' || !body.name) return json(400, { error: 'name: must not be empty' })
      const r: Request = {
        id: randomUUID(),
        secret: randomBytes(24).toString('base64url'),
        deviceId: randomUUID(),
        body,
        status: 'pending',
        key: null,
        claimed: false,
      }
      this.requests.set(r.id, r)
      if (this.approveOnJoin) this.approveAll()
      const answer = { request_id: r.id, claim_secret: r.secret, device_id: r.deviceId, status: r.status }
      if (this.misbehave === 'extra-key') return json(201, { ...answer, role: 'role-admin' })
      return json(201, answer)
    }
    const claim = /^\/api\/join\/([^/]+)$/.exec(url.pathname)
    if (req.method === 'GET' && claim) {
      this.claimCalls++
      const r = this.requests.get(decodeURIComponent(claim[1]!))
      if (!r) return json(404, { error: 'join request not found' })
      if (req.headers['x-claim-secret'] !== r.secret) return json(403, { error: 'wrong claim secret' })
      if (r.status !== 'approved') return json(200, { status: r.status, device_id: r.deviceId })
      if (r.claimed) return json(410, { error: 'the key was already claimed' })
      r.claimed = true
      if (this.misbehave === 'no-key') return json(200, { status: 'approved', device_id: r.deviceId })
      if (this.misbehave === 'other-device')
        return json(200, { status: 'approved', device_id: randomUUID(), device_key: r.key })
      return json(200, { status: 'approved', device_id: r.deviceId, device_key: r.key })
    }
    if (req.method === 'GET' && url.pathname === '/ollama/api/tags') {
      const key = req.headers.authorization?.replace(/^Bearer /, '')
      const ok = [...this.requests.values()].some((r) => r.key !== null && r.key === key)
      if (ok && this.misbehave === 'odd-models')
        return json(200, { models: [{ name: 'llama3:8b', size: 5, evil: '<img src=x onerror=alert(1)>' }] })
      return ok ? { status: 200, body: tags } : json(401, { error: 'invalid key' })
    }
    return json(404, { error: 'not found' })
  }
}

const json = (status: number, body: unknown) => ({ status, body: JSON.stringify(body) })

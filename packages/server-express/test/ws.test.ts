import type { MemoryStats, ServerMessage } from '@sharedllm/core'
import { afterEach, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import { listen, type RunningServer } from '../src/listen'
import { ADMIN, ADMIN_SECRET, approvedDevice, type Harness, setup } from './helpers'

let h: Harness
let srv: RunningServer
afterEach(async () => {
  await srv?.close()
  await h?.cleanup()
})

async function start(
  ws: Parameters<typeof listen>[1] extends infer O ? (O extends { ws?: infer W } ? W : never) : never = {},
) {
  h = await setup()
  srv = await listen(h.hub, { port: 0, host: '127.0.0.1', pwaDir: h.pwaDir, ws, drainMs: 2000 })
  return `ws://127.0.0.1:${srv.port}/ws`
}

/** Connects and collects every message; resolves once open. */
function connect(url: string, opts: WebSocket.ClientOptions = {}, protocols?: string[]) {
  const messages: ServerMessage[] = []
  const ws = new WebSocket(url, protocols, opts)
  const waiters: Array<() => void> = []
  ws.on('message', (data) => {
    messages.push(JSON.parse(String(data)))
    for (const w of waiters.splice(0)) w()
  })
  const next = async (pred: (m: ServerMessage) => boolean, timeoutMs = 3000): Promise<ServerMessage> => {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const found = messages.find(pred)
      if (found) return found
      if (Date.now() > deadline)
        throw new Error(`no matching message; got ${messages.map((m) => m.type).join(', ')}`)
      await new Promise<void>((r) => {
        waiters.push(r)
        setTimeout(r, 50)
      })
    }
  }
  const opened = new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve())
    ws.once('error', reject)
  })
  const closed = new Promise<{ code: number; at: number }>((resolve) =>
    ws.once('close', (code) => resolve({ code, at: Date.now() })),
  )
  return { ws, messages, next, opened, closed }
}

/** The HTTP status an upgrade was refused with. */
function refusal(url: string, opts: WebSocket.ClientOptions = {}, protocols?: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, protocols, opts)
    ws.once('unexpected-response', (_req, res) => {
      resolve(res.statusCode ?? 0)
      res.resume()
      ws.terminate()
    })
    ws.once('open', () => reject(new Error('upgrade was accepted')))
    ws.once('error', () => {})
  })
}

describe('WebSocket /ws', () => {
  it('sends a snapshot first, then device_approved after a REST approval', async () => {
    const url = await start()
    const c = connect(url, { headers: ADMIN })
    await c.opened
    const snap = await c.next((m) => m.type === 'snapshot')
    expect(c.messages[0]).toBe(snap)
    if (snap.type !== 'snapshot') throw new Error('unreachable')
    expect(snap.roles.length).toBeGreaterThanOrEqual(3)
    expect(snap.memory?.devices[0]?.provider).toBe('ram')
    const base = `http://127.0.0.1:${srv.port}`
    const added = await fetch(`${base}/api/devices`, {
      method: 'POST',
      headers: { ...ADMIN, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'phone', ip: '192.168.1.30' }),
    }).then((r) => r.json() as Promise<{ device: { id: string } }>)
    const res = await fetch(`${base}/api/devices/${added.device.id}/approve`, {
      method: 'POST',
      headers: { ...ADMIN, 'content-type': 'application/json' },
      body: JSON.stringify({ role_id: 'role-user' }),
    })
    expect(res.status).toBe(200)
    const ev = await c.next((m) => m.type === 'device_approved')
    expect(ev).toMatchObject({ type: 'device_approved', device: { id: added.device.id, status: 'approved' } })
    c.ws.close()
  })

  it('refuses unknown paths, foreign Hosts and Origins, and missing credentials before accepting', async () => {
    const url = await start()
    expect(await refusal(url)).toBe(401)
    expect(await refusal(url, { headers: { Authorization: 'Bearer wrong' } })).toBe(401)
    expect(await refusal(url.replace('/ws', '/wsx'), { headers: ADMIN })).toBe(404)
    expect(await refusal(url, { headers: { ...ADMIN, Host: 'evil.example' } })).toBe(403)
    expect(await refusal(url, { headers: ADMIN, origin: 'http://evil.example' })).toBe(403)
    expect(h.app.ws.size + srv.app.ws.size).toBe(0)
  })

  it('authenticates a browser by session cookie with a same-origin Origin only', async () => {
    const url = await start()
    const login = await fetch(`http://127.0.0.1:${srv.port}/api/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ secret: ADMIN_SECRET }),
    })
    const cookie = String(login.headers.get('set-cookie')).split(';')[0]!
    expect(await refusal(url, { headers: { Cookie: cookie } })).toBe(403)
    const c = connect(url, { headers: { Cookie: cookie }, origin: `http://127.0.0.1:${srv.port}` })
    await c.opened
    expect((await c.next((m) => m.type === 'snapshot')).type).toBe('snapshot')
    c.ws.close()
  })

  it("logout closes that session's socket within a second; a secret reset closes every owner socket", async () => {
    const url = await start()
    const base = `http://127.0.0.1:${srv.port}`
    const login = async () =>
      String(
        (
          await fetch(`${base}/api/auth/login`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ secret: ADMIN_SECRET }),
          })
        ).headers.get('set-cookie'),
      ).split(';')[0]!
    const [first, second] = [await login(), await login()]
    const open = async (cookie: string) => {
      const c = connect(url, { headers: { Cookie: cookie }, origin: base })
      await c.opened
      await c.next((m) => m.type === 'snapshot')
      const closed = new Promise<number>((r) => c.ws.on('close', (code) => r(code)))
      return { c, closed }
    }
    const a = await open(first)
    const b = await open(second)
    const bySecret = connect(url, { headers: ADMIN })
    await bySecret.opened
    const secretClosed = new Promise<number>((r) => bySecret.ws.on('close', (code) => r(code)))

    const started = Date.now()
    await fetch(`${base}/api/auth/logout`, { method: 'POST', headers: { Cookie: first, Origin: base } })
    expect(await a.closed).toBe(4001)
    expect(Date.now() - started).toBeLessThan(1000)
    expect(b.c.ws.readyState).toBe(WebSocket.OPEN)

    await h.hub.admin.resetSecret()
    expect(await b.closed).toBe(4001)
    expect(await secretClosed).toBe(4001)
  })

  it('gives a device key only its own events and closes it with 4001 when the key is rotated', async () => {
    const url = await start()
    const mine = await approvedDevice(h.hub, 'mine')
    const other = await approvedDevice(h.hub, 'other')
    expect(await refusal(url, {}, ['sharedllm', 'bearer.sllm_wrong'])).toBe(401)
    const c = connect(url, {}, ['sharedllm', `bearer.${mine.key}`])
    await c.opened
    expect(c.ws.protocol).toBe('sharedllm')
    const snap = await c.next((m) => m.type === 'snapshot')
    if (snap.type !== 'snapshot') throw new Error('unreachable')
    expect(snap.devices.map((d) => d.id)).toEqual([mine.deviceId])
    expect(snap.roles.map((r) => r.id)).toEqual(['role-user'])
    expect(snap.memory).toBeNull()
    await h.hub.devices.setAllocation(other.deviceId, 100)
    await h.hub.devices.setAllocation(mine.deviceId, 200)
    h.hub.bus.emit('memory_stats', (await h.hub.memory!.sample()) as MemoryStats)
    const ev = await c.next((m) => m.type === 'allocation_changed')
    expect(ev).toMatchObject({ device: { id: mine.deviceId }, allocation_mb: 200 })
    expect(c.messages.filter((m) => m.type === 'allocation_changed')).toHaveLength(1)
    expect(c.messages.some((m) => m.type === 'memory_stats')).toBe(false)
    const t0 = Date.now()
    await h.hub.access.rotateKey(mine.deviceId)
    const closed = await c.closed
    expect(closed.code).toBe(4001)
    expect(closed.at - t0).toBeLessThan(1000)
  })

  it('a socket opened with an admin-role key loses the admin feed within 1 s when the device is demoted', async () => {
    const url = await start()
    const boss = await approvedDevice(h.hub, 'boss', 'role-admin')
    const other = await approvedDevice(h.hub, 'bystander')
    const c = connect(url, {}, ['sharedllm', `bearer.${boss.key}`])
    await c.opened
    const snap = await c.next((m) => m.type === 'snapshot')
    if (snap.type !== 'snapshot') throw new Error('unreachable')
    // The admin feed: every device, other devices' events.
    expect(snap.devices.length).toBeGreaterThanOrEqual(2)
    await h.hub.devices.setAllocation(other.deviceId, 100)
    await c.next((m) => m.type === 'allocation_changed' && m.device.id === other.deviceId)
    await h.hub.devices.setAllocation(boss.deviceId, 1024)
    const t0 = Date.now()
    await h.hub.devices.setRole(boss.deviceId, 'role-guest')
    const closed = await c.closed
    expect(closed.code).toBe(4003)
    expect(closed.at - t0).toBeLessThan(1000)
    // Reconnected with the same key: the device's view of its current role, no one else's events.
    const again = connect(url, {}, ['sharedllm', `bearer.${boss.key}`])
    await again.opened
    const view = await again.next((m) => m.type === 'snapshot')
    if (view.type !== 'snapshot') throw new Error('unreachable')
    expect(view.devices.map((d) => d.id)).toEqual([boss.deviceId])
    expect(view.roles.map((r) => r.id)).toEqual(['role-guest'])
    expect(view.memory).toBeNull()
    await h.hub.devices.setAllocation(other.deviceId, 200)
    await h.hub.devices.setAllocation(boss.deviceId, 300)
    await again.next((m) => m.type === 'allocation_changed')
    expect(again.messages.filter((m) => m.type === 'allocation_changed')).toEqual([
      expect.objectContaining({ device: expect.objectContaining({ id: boss.deviceId }) }),
    ])
    again.ws.close()
  })

  it('models_running is filtered by the device’s role, and follows a change of its role at once', async () => {
    const url = await start()
    const kids = await h.hub.roles.create({ name: 'kids', max_memory_mb: 4096, allowed_models: ['qwen3*'] })
    const dev = await approvedDevice(h.hub, 'kid', kids.id)
    const c = connect(url, {}, ['sharedllm', `bearer.${dev.key}`])
    await c.opened
    await c.next((m) => m.type === 'snapshot')
    const running = (name: string, size: number) => ({
      name,
      model: name,
      size,
      size_vram: size,
      digest: 'x',
      expires_at: '2026-12-01T00:00:00Z',
      context_length: 4096,
      details: {},
    })
    const emit = (n: number) =>
      h.hub.bus.emit('models_running', {
        models: [
          running('qwen3:1.7b', 1_400_000_000),
          running('smollm2:135m', 270_000_000),
          running('llama3.1:70b', 40e9),
          running(`qwen3:32b-${n}`, 20e9),
        ],
      } as never)
    emit(1)
    const first = await c.next((m) => m.type === 'models_running')
    if (first.type !== 'models_running') throw new Error('unreachable')
    // Allowed and within the 4096 MiB allocation: only the small qwen (not the 32B one, not the 70B).
    expect(first.models.map((m) => m.name)).toEqual(['qwen3:1.7b'])
    // The role's list changes: the socket's next event follows it.
    await h.hub.roles.update(kids.id, { allowed_models: ['smollm2*', 'llama3.1*'] })
    await expect
      .poll(async () => {
        c.messages.length = 0
        emit(2)
        const last = await c.next((m) => m.type === 'models_running')
        return last.type === 'models_running' ? last.models.map((m) => m.name) : null
      })
      .toEqual(['smollm2:135m'])
    c.ws.close()
  })

  it('drops a client that stops answering pings', async () => {
    const url = await start({ heartbeatMs: 100 })
    const c = connect(url, { headers: ADMIN, autoPong: false })
    await c.opened
    const closed = await c.closed
    expect(closed.code).toBe(1006)
    expect(srv.app.ws.size).toBe(0)
  })

  it('keeps a client that answers pings', async () => {
    const url = await start({ heartbeatMs: 100 })
    const c = connect(url, { headers: ADMIN })
    await c.opened
    await new Promise((r) => setTimeout(r, 500))
    expect(c.ws.readyState).toBe(WebSocket.OPEN)
    c.ws.close()
  })

  it('drops a client whose send buffer passes the limit', async () => {
    const url = await start({ maxBufferedBytes: 64 * 1024 })
    const slow = connect(url, { headers: ADMIN })
    const fast = connect(url, { headers: ADMIN })
    await Promise.all([slow.opened, fast.opened])
    await slow.next((m) => m.type === 'snapshot')
    await fast.next((m) => m.type === 'snapshot')
    ;(slow.ws as unknown as { _socket: { pause(): void } })._socket.pause()
    const big = 'x'.repeat(256 * 1024)
    for (let i = 0; i < 60 && srv.app.ws.size > 1; i++) {
      h.hub.bus.emit('model_pull_failed', { name: 'm', error: big })
      await new Promise((r) => setTimeout(r, 10))
    }
    expect(srv.app.ws.size).toBe(1)
    expect(fast.ws.readyState).toBe(WebSocket.OPEN)
    fast.ws.close()
    slow.ws.terminate()
  })

  it('closes sockets with 1001 on shutdown', async () => {
    const url = await start()
    const c = connect(url, { headers: ADMIN })
    await c.opened
    await srv.close()
    expect((await c.closed).code).toBe(1001)
  })
})

describe('sharedllm join (client)', () => {
  it('files a join request, waits for approval and returns the key', async () => {
    const { joinHost } = await import('../src/join-client')
    await start()
    const off = h.hub.on('device_pending_approval', ({ device }) => {
      setTimeout(() => void h.hub.devices.approve(device.id, 'role-user'), 100)
    })
    const key = await joinHost({ url: `http://127.0.0.1:${srv.port}`, name: 'cli laptop', intervalMs: 50 })
    off()
    expect(await h.hub.access.authenticate(key)).toMatchObject({
      kind: 'device',
      device: { name: 'cli laptop' },
    })
    await expect(joinHost({ url: 'ftp://x', name: 'y' })).rejects.toThrow(/not an http/)
  })
})

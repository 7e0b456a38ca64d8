import { hoursStatus, type ServerMessage } from '@sharedllm/core'
import request from 'supertest'
import { afterEach, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import { listen, type RunningServer } from '../src/listen'
import { ADMIN, approvedDevice, type Harness, setup } from './helpers'

let h: Harness
let srv: RunningServer | undefined
afterEach(async () => {
  await srv?.close()
  srv = undefined
  await h?.cleanup()
})

describe('the queue routes (owner)', () => {
  it('GET /api/queue is the snapshot; pause, resume and reclaim are the owner’s and validated', async () => {
    h = await setup()
    const phone = await approvedDevice(h.hub, 'phone', 'role-guest')
    const snap = await request(h.app).get('/api/queue').set(ADMIN).expect(200)
    expect(snap.body).toMatchObject({ devices: [], waiting: [], running: [], paused_roles: [] })
    await request(h.app)
      .get('/api/queue')
      .set({ Authorization: `Bearer ${phone.key}` })
      .expect(403)
    await request(h.app)
      .post('/api/queue/pause')
      .set({ Authorization: `Bearer ${phone.key}` })
      .send({ role_id: 'role-guest' })
      .expect(403)

    const bad = await request(h.app).post('/api/queue/pause').set(ADMIN).send({ role: 'x' }).expect(400)
    expect(bad.body.error).toMatch(/^role_id: /)
    const missing = await request(h.app)
      .post('/api/queue/pause')
      .set(ADMIN)
      .send({ role_id: 'role-nope' })
      .expect(404)
    expect(missing.body.error).toMatch(/role-nope/)
    await request(h.app)
      .post('/api/queue/pause')
      .set(ADMIN)
      .send({ role_id: 'role-guest', mode: 'later' })
      .expect(400)

    const paused = await request(h.app)
      .post('/api/queue/pause')
      .set(ADMIN)
      .send({ role_id: 'role-guest', mode: 'refuse' })
      .expect(200)
    expect(paused.body.paused_roles).toEqual([{ role_id: 'role-guest', mode: 'refuse' }])
    expect((await request(h.app).get('/api/queue').set(ADMIN)).body.paused_roles).toHaveLength(1)
    const resumed = await request(h.app)
      .post('/api/queue/resume')
      .set(ADMIN)
      .send({ role_id: 'role-guest' })
      .expect(200)
    expect(resumed.body.paused_roles).toEqual([])
    const reclaimed = await request(h.app).post('/api/queue/reclaim').set(ADMIN).send({}).expect(200)
    expect(reclaimed.body).toEqual({ reclaimed: [] })
    await request(h.app).post('/api/queue/reclaim').set(ADMIN).send({ count: 0 }).expect(400)
  })
})

const HOURS = [{ days: [1, 2, 3, 4, 5], from: '16:00', to: '20:00' }]

describe('/api/me limits', () => {
  it('remaining budget per window with its reset, the device overriding its role, and the hours', async () => {
    h = await setup()
    const phone = await approvedDevice(h.hub, 'tablet', 'role-guest')
    await h.hub.roles.update('role-guest', { token_budget_day: 1000, token_budget_week: 5000 })
    await h.hub.devices.setLimits(phone.deviceId, {
      token_budget_week: 3000,
      allowed_hours: HOURS,
    })
    h.hub.recorder.record({
      device_id: phone.deviceId,
      model: 'llama3.2:3b',
      endpoint: '/api/chat',
      prompt_tokens: 100,
      completion_tokens: 150,
      duration_ms: 10,
      status: 200,
    })
    const me = await request(h.app)
      .get('/api/me')
      .set({ Authorization: `Bearer ${phone.key}` })
      .expect(200)
    const { limits } = me.body
    expect(limits.time_zone).toBe(h.hub.usage.zone)
    const byWindow = Object.fromEntries(limits.quota.map((q: { window: string }) => [q.window, q])) as Record<
      string,
      { budget: number | null; used: number; remaining: number | null; resets_at: number }
    >
    expect(byWindow.day).toMatchObject({ budget: 1000, used: 250, remaining: 750 })
    expect(byWindow.week).toMatchObject({ budget: 3000, used: 250, remaining: 2750 })
    expect(byWindow.month).toMatchObject({ budget: null, remaining: null })
    for (const q of Object.values(byWindow)) expect(q.resets_at).toBeGreaterThan(Date.now())
    const expected = hoursStatus(HOURS, Date.now(), h.hub.usage.zone)
    expect(limits.hours).toMatchObject({
      open: expected.open,
      always: false,
      next_change: expected.next_change,
    })
  })
})

/** Connects and collects every message. */
function connect(url: string, key: string) {
  const messages: ServerMessage[] = []
  const ws = new WebSocket(url, { headers: { Authorization: `Bearer ${key}` } })
  ws.on('message', (data) => messages.push(JSON.parse(String(data))))
  const opened = new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve())
    ws.once('error', reject)
  })
  return { ws, messages, opened }
}

describe('queue and quota events on the WebSocket', () => {
  it('a device hears its own queue_position and quota; budget_reached is the owner’s alone', async () => {
    h = await setup()
    srv = await listen(h.hub, { port: 0, host: '127.0.0.1', pwaDir: h.pwaDir, drainMs: 500 })
    const url = `ws://127.0.0.1:${srv.port}/ws`
    const a = await approvedDevice(h.hub, 'a', 'role-user')
    const b = await approvedDevice(h.hub, 'b', 'role-user')
    const owner = connect(url, ADMIN.Authorization.slice('Bearer '.length))
    const ca = connect(url, a.key)
    const cb = connect(url, b.key)
    await Promise.all([owner.opened, ca.opened, cb.opened])
    await expect.poll(() => [owner, ca, cb].every((c) => c.messages.length > 0)).toBe(true)
    const crossing = {
      device_id: a.deviceId,
      window: 'day' as const,
      threshold: 100 as const,
      used: 10,
      budget: 10,
      resets_at: Date.now() + 1000,
    }
    h.hub.bus.emit('queue_position', { device_id: a.deviceId, request_id: 'r1', position: 2, eta_s: 8 })
    h.hub.bus.emit('quota', crossing)
    h.hub.bus.emit('budget_reached', { ...crossing, device_name: 'a', time_zone: 'UTC' })
    h.hub.bus.emit('usage', {
      id: -1,
      device_id: b.deviceId,
      model: 'm',
      endpoint: '/api/chat',
      prompt_tokens: 1,
      completion_tokens: 1,
      duration_ms: 1,
      status: 200,
      at: Date.now(),
    })
    const types = (c: { messages: ServerMessage[] }) =>
      c.messages.map((m) => m.type).filter((t) => t !== 'snapshot')
    await expect.poll(() => types(owner)).toEqual(['queue_position', 'quota', 'budget_reached', 'usage'])
    await expect.poll(() => types(cb)).toEqual(['usage'])
    expect(types(ca)).toEqual(['queue_position', 'quota'])
    expect(ca.messages.find((m) => m.type === 'queue_position')).toMatchObject({
      request_id: 'r1',
      position: 2,
      eta_s: 8,
    })
    for (const c of [owner, ca, cb]) c.ws.close()
  })
})

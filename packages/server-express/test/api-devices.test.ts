import request from 'supertest'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { ADMIN, approvedDevice, type Harness, setup } from './helpers'

let h: Harness
beforeEach(async () => {
  h = await setup()
})
afterEach(() => h.cleanup())

const add = (body: unknown) =>
  request(h.app)
    .post('/api/devices')
    .set(ADMIN)
    .send(body as object)

describe('devices API', () => {
  it('adds, lists, filters and reads a device', async () => {
    const res = await add({ name: 'laptop', ip: '192.168.1.7' }).expect(201)
    expect(res.body.device).toMatchObject({
      name: 'laptop',
      ip: '192.168.1.7',
      status: 'pending',
      source: 'manual',
    })
    const id = res.body.device.id
    const list = await request(h.app).get('/api/devices').set(ADMIN).expect(200)
    expect(list.body.devices.map((d: { id: string }) => d.id)).toEqual([id])
    expect(
      (await request(h.app).get('/api/devices?status=approved').set(ADMIN).expect(200)).body.devices,
    ).toEqual([])
    expect((await request(h.app).get('/api/devices?status=pending').set(ADMIN)).body.devices).toHaveLength(1)
    const detail = await request(h.app).get(`/api/devices/${id}`).set(ADMIN).expect(200)
    expect(detail.body).toEqual({
      device: res.body.device,
      allocation_history: [],
      usage: { requests: 0, prompt_tokens: 0, completion_tokens: 0 },
    })
  })

  it('rejects bad bodies with 400 naming the field, and changes nothing', async () => {
    const cases: Array<[unknown, RegExp]> = [
      [{ name: 'x', ip: 'not-an-ip' }, /^ip: /],
      [{ name: '', ip: '10.0.0.1' }, /^name: /],
      [{ name: 5, ip: '10.0.0.1' }, /^name: /],
      [{ name: 'x', ip: '10.0.0.1', admin: true }, /unknown field 'admin'/],
      [[1, 2], /^body: /],
      ['hello', /^body: /],
    ]
    for (const [body, message] of cases) {
      const res = await add(body).expect(400)
      expect(res.body.code).toBe('VALIDATION')
      expect(res.body.error).toMatch(message)
    }
    const noBody = await request(h.app).post('/api/devices').set(ADMIN).expect(400)
    expect(noBody.body.error).toMatch(/^body: /)
    expect(await h.hub.devices.list()).toEqual([])
  })

  it('answers 400 for malformed JSON and for a bad status filter', async () => {
    const res = await request(h.app)
      .post('/api/devices')
      .set(ADMIN)
      .set('Content-Type', 'application/json')
      .send('{"name": "x",')
      .expect(400)
    expect(res.body).toMatchObject({ code: 'BAD_REQUEST', error: 'body: is not valid JSON' })
    const bad = await request(h.app).get('/api/devices?status=lost').set(ADMIN).expect(400)
    expect(bad.body.error).toMatch(/^status: /)
  })

  it('approves, changes memory and role, revokes, rotates keys and removes', async () => {
    const { body } = await add({ name: 'tablet', ip: '192.168.1.8' })
    const id = body.device.id
    const approved = await request(h.app)
      .post(`/api/devices/${id}/approve`)
      .set(ADMIN)
      .send({ role_id: 'role-user' })
      .expect(200)
    expect(approved.body.device).toMatchObject({
      status: 'approved',
      role_id: 'role-user',
      allocation_mb: 8192,
    })
    const mem = await request(h.app)
      .patch(`/api/devices/${id}/memory`)
      .set(ADMIN)
      .send({ memory_mb: 1024 })
      .expect(200)
    expect(mem.body.device.allocation_mb).toBe(1024)
    const role = await request(h.app)
      .patch(`/api/devices/${id}/role`)
      .set(ADMIN)
      .send({ role_id: 'role-guest' })
      .expect(200)
    expect(role.body.device.role_id).toBe('role-guest')
    const key = await request(h.app).post(`/api/devices/${id}/rotate-key`).set(ADMIN).expect(200)
    expect(key.body.device_key).toMatch(/^sllm_/)
    expect(await h.hub.access.authenticate(key.body.device_key)).toMatchObject({ kind: 'device' })
    const revoked = await request(h.app).post(`/api/devices/${id}/revoke`).set(ADMIN).expect(200)
    expect(revoked.body.device.status).toBe('revoked')
    expect(await h.hub.access.authenticate(key.body.device_key)).toBeNull()
    const other = (await add({ name: 'other', ip: '192.168.1.10' })).body.device.id
    const denied = await request(h.app).post(`/api/devices/${other}/deny`).set(ADMIN).expect(200)
    expect(denied.body.device.status).toBe('denied')
    const removed = await request(h.app).delete(`/api/devices/${id}`).set(ADMIN).expect(200)
    expect(removed.body.device.id).toBe(id)
    await request(h.app).get(`/api/devices/${id}`).set(ADMIN).expect(404)
    const audit = await request(h.app).get('/api/audit?limit=3').set(ADMIN).expect(200)
    expect(audit.body.entries).toHaveLength(3)
    expect(audit.body.entries.map((e: { action: string }) => e.action)).toContain('device.remove')
    await request(h.app).get('/api/audit?limit=0').set(ADMIN).expect(400)
    await request(h.app).get('/api/audit?limit=abc').set(ADMIN).expect(400)
  })

  it('answers 404 for unknown ids on every device route', async () => {
    const id = 'no-such-device'
    await request(h.app).get(`/api/devices/${id}`).set(ADMIN).expect(404)
    await request(h.app).delete(`/api/devices/${id}`).set(ADMIN).expect(404)
    await request(h.app)
      .post(`/api/devices/${id}/approve`)
      .set(ADMIN)
      .send({ role_id: 'role-user' })
      .expect(404)
    await request(h.app).post(`/api/devices/${id}/deny`).set(ADMIN).expect(404)
    await request(h.app).post(`/api/devices/${id}/revoke`).set(ADMIN).expect(404)
    await request(h.app).patch(`/api/devices/${id}/memory`).set(ADMIN).send({ memory_mb: 10 }).expect(404)
    await request(h.app)
      .patch(`/api/devices/${id}/role`)
      .set(ADMIN)
      .send({ role_id: 'role-user' })
      .expect(404)
    await request(h.app).post(`/api/devices/${id}/rotate-key`).set(ADMIN).expect(404)
  })

  it('answers conflicts and capacity violations without changing anything', async () => {
    const { body } = await add({ name: 'tv', ip: '192.168.1.9' })
    const id = body.device.id
    // Unknown role: 404 naming role_id; revoking a pending device or setting its role: 409.
    const noRole = await request(h.app)
      .post(`/api/devices/${id}/approve`)
      .set(ADMIN)
      .send({ role_id: 'role-x' })
      .expect(404)
    expect(noRole.body.error).toMatch(/role_id/)
    await request(h.app)
      .patch(`/api/devices/${id}/role`)
      .set(ADMIN)
      .send({ role_id: 'role-user' })
      .expect(409)
    await request(h.app).post(`/api/devices/${id}/rotate-key`).set(ADMIN).expect(409)
    await request(h.app)
      .post(`/api/devices/${id}/approve`)
      .set(ADMIN)
      .send({ role_id: 'role-guest' })
      .expect(200)
    const over = await request(h.app).patch(`/api/devices/${id}/memory`).set(ADMIN).send({ memory_mb: 8192 })
    expect(over.status).toBeGreaterThanOrEqual(409)
    expect(over.status).toBeLessThan(500)
    expect((await h.hub.devices.get(id)).allocation_mb).toBe(2048)
    await request(h.app).patch(`/api/devices/${id}/memory`).set(ADMIN).send({ memory_mb: 1.5 }).expect(400)
    await request(h.app).patch(`/api/devices/${id}/memory`).set(ADMIN).send({ memory_mb: '512' }).expect(400)
  })
})

describe('join flow', () => {
  it('joins, waits, gets approved and claims the key exactly once', async () => {
    const joined = await request(h.app)
      .post('/api/join')
      .send({ name: 'my phone', platform: 'ios' })
      .expect(201)
    const { request_id, claim_secret, device_id } = joined.body
    expect(joined.body.status).toBe('pending')
    const waiting = await request(h.app)
      .get(`/api/join/${request_id}`)
      .set('X-Claim-Secret', claim_secret)
      .expect(200)
    expect(waiting.body).toEqual({ status: 'pending', device_id })
    await request(h.app).get(`/api/join/${request_id}`).set('X-Claim-Secret', 'wrong').expect(401)
    await request(h.app).get(`/api/join/${request_id}`).expect(401)
    await request(h.app)
      .get('/api/join/00000000-0000-0000-0000-000000000000')
      .set('X-Claim-Secret', 'x')
      .expect(404)
    await request(h.app)
      .post(`/api/devices/${device_id}/approve`)
      .set(ADMIN)
      .send({ role_id: 'role-guest' })
      .expect(200)
    const claimed = await request(h.app)
      .get(`/api/join/${request_id}`)
      .set('X-Claim-Secret', claim_secret)
      .expect(200)
    expect(claimed.body.device_key).toMatch(/^sllm_/)
    await request(h.app).get(`/api/join/${request_id}`).set('X-Claim-Secret', claim_secret).expect(410)
    // The key works for the device's own endpoints and not for admin ones.
    const key = { Authorization: `Bearer ${claimed.body.device_key}` }
    const session = await request(h.app).get('/api/auth/session').set(key).expect(200)
    expect(session.body).toMatchObject({
      kind: 'device',
      device: { id: device_id },
      role: { id: 'role-guest' },
    })
    await request(h.app).get('/api/devices').set(key).expect(403)
  })

  it('validates join bodies and rate limits per address with Retry-After', async () => {
    const bad = await request(h.app).post('/api/join').send({ name: 'x', evil: 1 }).expect(400)
    expect(bad.body.error).toMatch(/evil/)
    let last = 0
    for (let i = 0; i < 12; i++)
      last = (
        await request(h.app)
          .post('/api/join')
          .send({ name: `d${i}` })
      ).status
    expect(last).toBe(429)
    const limited = await request(h.app).post('/api/join').send({ name: 'late' }).expect(429)
    expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0)
  })

  it('creates pairing codes that approve at once', async () => {
    await request(h.app).post('/api/pairing').send({ role_id: 'role-user' }).expect(401)
    await request(h.app).post('/api/pairing').set(ADMIN).send({ role_id: 'nope' }).expect(404)
    await request(h.app).post('/api/pairing').set(ADMIN).send({}).expect(400)
    const code = await request(h.app)
      .post('/api/pairing')
      .set(ADMIN)
      .send({ role_id: 'role-user' })
      .expect(201)
    expect(code.body.path).toBe(`/join?code=${code.body.code}`)
    const joined = await request(h.app)
      .post('/api/join')
      .send({ name: 'kid tablet', pairing_code: code.body.code })
      .expect(201)
    expect(joined.body.status).toBe('approved')
  })

  it('serves /api/me to a device key', async () => {
    const { key, deviceId } = await approvedDevice(h.hub)
    const me = await request(h.app).get('/api/me').set('Authorization', `Bearer ${key}`).expect(200)
    expect(me.body.device.id).toBe(deviceId)
    expect(me.body.usage).toEqual({ requests: 0, prompt_tokens: 0, completion_tokens: 0 })
    await request(h.app).get('/api/me').expect(401)
    await request(h.app).get('/api/me').set(ADMIN).expect(400)
  })
})

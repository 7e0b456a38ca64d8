import request from 'supertest'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { ADMIN, type Harness, setup } from './helpers'

let h: Harness
beforeEach(async () => {
  h = await setup()
})
afterEach(() => h.cleanup())

const role = {
  name: 'teen',
  max_memory_mb: 2048,
  can_pull: false,
  trust_level: 1,
  allowed_models: ['llama3*'],
  requests_per_minute: 60,
  max_concurrent: 1,
  max_keep_alive_s: 600,
  max_context_tokens: 8192,
}

describe('roles API', () => {
  it('lists the built-ins, creates, updates and deletes a role', async () => {
    const list = await request(h.app).get('/api/permissions/roles').set(ADMIN).expect(200)
    expect(list.body.roles.map((r: { id: string }) => r.id)).toEqual(
      expect.arrayContaining(['role-admin', 'role-user', 'role-guest']),
    )
    const created = await request(h.app).post('/api/permissions/roles').set(ADMIN).send(role).expect(201)
    expect(created.body.role).toMatchObject({ ...role, builtin: false })
    const id = created.body.role.id
    const updated = await request(h.app)
      .put(`/api/permissions/roles/${id}`)
      .set(ADMIN)
      .send({ max_memory_mb: 3000 })
      .expect(200)
    expect(updated.body.role.max_memory_mb).toBe(3000)
    const deleted = await request(h.app).delete(`/api/permissions/roles/${id}`).set(ADMIN).expect(200)
    expect(deleted.body.role.id).toBe(id)
    await request(h.app).delete(`/api/permissions/roles/${id}`).set(ADMIN).expect(404)
  })

  it('rejects bad role bodies, duplicates, unknown ids and built-in deletion', async () => {
    const before = await h.hub.roles.list()
    const bad = await request(h.app)
      .post('/api/permissions/roles')
      .set(ADMIN)
      .send({ ...role, max_memory_mb: 'lots' })
      .expect(400)
    expect(bad.body.error).toMatch(/^max_memory_mb: /)
    const pattern = await request(h.app)
      .post('/api/permissions/roles')
      .set(ADMIN)
      .send({ ...role, allowed_models: ['ok', 'bad model'] })
      .expect(400)
    expect(pattern.body.error).toMatch(/^allowed_models\.1: /)
    await request(h.app)
      .post('/api/permissions/roles')
      .set(ADMIN)
      .send({ ...role, name: 'user' })
      .expect(409)
    await request(h.app)
      .put('/api/permissions/roles/role-nope')
      .set(ADMIN)
      .send({ max_memory_mb: 10 })
      .expect(404)
    await request(h.app).put('/api/permissions/roles/role-user').set(ADMIN).send({}).expect(400)
    await request(h.app).delete('/api/permissions/roles/role-guest').set(ADMIN).expect(403)
    expect(await h.hub.roles.list()).toEqual(before)
  })
})

describe('settings API', () => {
  it('lists settings, sets one, and refuses unknown keys and bad values', async () => {
    const list = await request(h.app).get('/api/settings').set(ADMIN).expect(200)
    expect(list.body.settings.find((s: { key: string }) => s.key === 'host_reserve_mb')).toMatchObject({
      value: 2048,
      default: 2048,
      type: 'number',
    })
    const set = await request(h.app)
      .put('/api/settings/host_reserve_mb')
      .set(ADMIN)
      .send({ value: 4096 })
      .expect(200)
    expect(set.body).toEqual({ key: 'host_reserve_mb', value: 4096 })
    expect(h.hub.settings.get('host_reserve_mb')).toBe(4096)
    const unknown = await request(h.app)
      .put('/api/settings/no_such_key')
      .set(ADMIN)
      .send({ value: 1 })
      .expect(404)
    expect(unknown.body.error).toMatch(/no_such_key/)
    const wrong = await request(h.app)
      .put('/api/settings/host_reserve_mb')
      .set(ADMIN)
      .send({ value: 'big' })
      .expect(400)
    expect(wrong.body.error).toMatch(/host_reserve_mb/)
    await request(h.app).put('/api/settings/host_reserve_mb').set(ADMIN).send({}).expect(400)
    await request(h.app)
      .put('/api/settings/host_reserve_mb')
      .set(ADMIN)
      .send({ value: 1, extra: 2 })
      .expect(400)
    await request(h.app)
      .put('/api/settings/default_role')
      .set(ADMIN)
      .send({ value: 'role-missing' })
      .expect(400)
    expect(h.hub.settings.get('host_reserve_mb')).toBe(4096)
  })
})

describe('system endpoints', () => {
  it('/healthz answers without credentials', async () => {
    const res = await request(h.app).get('/healthz').expect(200)
    expect(res.body).toEqual({ ok: true, version: expect.any(String) })
  })

  it("/api/gpu returns this machine's memory from the real RAM provider", async () => {
    const res = await request(h.app).get('/api/gpu').set(ADMIN).expect(200)
    expect(res.body.devices.length).toBeGreaterThan(0)
    expect(res.body.devices[0]).toMatchObject({ provider: 'ram', kind: 'system' })
    expect(res.body.devices[0].totalBytes).toBeGreaterThan(100 * 1024 * 1024)
    await request(h.app).get('/api/gpu').expect(401)
  })

  it('/api/ollama/status and /api/usage answer for the admin', async () => {
    const status = await request(h.app).get('/api/ollama/status').set(ADMIN).expect(200)
    expect(status.body).toHaveProperty('state')
    const usage = await request(h.app).get('/api/usage').set(ADMIN).expect(200)
    expect(usage.body).toEqual({ by_device_model: [], recent: [] })
  })

  it('/api/openapi.json documents every route with the request schemas', async () => {
    const res = await request(h.app).get('/api/openapi.json').set(ADMIN).expect(200)
    expect(res.body.openapi).toBe('3.1.0')
    for (const route of h.app.routes.filter((r) => r.path !== '/api/openapi.json')) {
      const path = route.path.replace(/:([A-Za-z_]+)/g, '{$1}')
      expect(res.body.paths[path]?.[route.method], `${route.method} ${path}`).toBeDefined()
    }
    const add = res.body.paths['/api/devices'].post.requestBody.content['application/json'].schema
    expect(add.required).toEqual(expect.arrayContaining(['name', 'ip']))
    expect(add.additionalProperties).toBe(false)
  })

  it('unknown /api paths are JSON 404s, never the app', async () => {
    for (const path of ['/api/nope', '/api', '/ws/x', '/v1/unknown', '/ollama/zzz', '/metrics/x']) {
      const res = await request(h.app).get(path).set(ADMIN)
      expect(res.status, path).toBe(404)
      expect(res.headers['content-type'], path).toMatch(/json/)
    }
  })
})

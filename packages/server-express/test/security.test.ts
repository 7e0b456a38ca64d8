import request from 'supertest'
import { afterEach, describe, expect, it } from 'vitest'
import { ADMIN, ADMIN_SECRET, ASSET, approvedDevice, type Harness, setup } from './helpers'

let h: Harness
afterEach(() => h?.cleanup())

function sessionCookie(res: request.Response): string {
  const header = ([] as string[]).concat(res.headers['set-cookie'] ?? [])[0] ?? ''
  return header.split(';')[0]!
}

describe('Host allowlist (DNS-rebinding guard)', () => {
  it('answers 403 before anything else for a foreign Host, even on public routes', async () => {
    h = await setup()
    for (const path of ['/healthz', '/api/devices', '/', '/api/join']) {
      const res = await request(h.app).get(path).set('Host', 'evil.example.com').set(ADMIN)
      expect(res.status, path).toBe(403)
      expect(res.body.code).toBe('FORBIDDEN')
    }
    await request(h.app).get('/healthz').set('Host', 'localhost:8080').expect(200)
    await request(h.app).get('/healthz').set('Host', '[::1]:8080').expect(200)
    await request(h.app).get('/healthz').set('Host', 'localhost:8080:90').expect(403)
  })

  it('accepts configured extra names from options and from the allowed_hosts setting', async () => {
    h = await setup({ app: { allowedHosts: ['llm.home.arpa'] } })
    await request(h.app).get('/healthz').set('Host', 'llm.home.arpa:8080').expect(200)
    await request(h.app).get('/healthz').set('Host', 'box.lan').expect(403)
    await h.hub.settings.set('allowed_hosts', ['box.lan'])
    await request(h.app).get('/healthz').set('Host', 'box.lan').expect(200)
  })
})

describe('admin credential', () => {
  it('gives missing and wrong credentials the same 401', async () => {
    h = await setup()
    const missing = await request(h.app).get('/api/devices').expect(401)
    const wrong = await request(h.app).get('/api/devices').set('Authorization', 'Bearer nope').expect(401)
    const garbage = await request(h.app).get('/api/devices').set('Authorization', 'Basic abc').expect(401)
    const badCookie = await request(h.app)
      .get('/api/devices')
      .set('Cookie', 'sllm_session=forged')
      .expect(401)
    expect(wrong.body).toEqual(missing.body)
    expect(garbage.body).toEqual(missing.body)
    expect(badCookie.body).toEqual(missing.body)
  })

  it('protects every admin route', async () => {
    h = await setup()
    const adminRoutes = h.app.routes.filter((r) => r.access === 'admin' || r.access === 'owner')
    expect(adminRoutes.length).toBeGreaterThan(20)
    for (const r of adminRoutes) {
      const path = r.path.replace(/:[A-Za-z_]+/g, 'x')
      const res = await request(h.app)[r.method](path).send({})
      expect(res.status, `${r.method} ${path}`).toBe(401)
    }
  })

  it('lets a device with the admin role manage, and refuses a plain device with 403', async () => {
    h = await setup()
    const boss = await approvedDevice(h.hub, 'owner laptop', 'role-admin')
    const kid = await approvedDevice(h.hub, 'kid phone', 'role-guest')
    await request(h.app).get('/api/devices').set('Authorization', `Bearer ${boss.key}`).expect(200)
    await request(h.app).get('/api/devices').set('Authorization', `Bearer ${kid.key}`).expect(403)
  })

  it('logs in with the secret into an HttpOnly SameSite=Strict cookie, and logs out', async () => {
    h = await setup()
    const wrong = await request(h.app).post('/api/auth/login').send({ secret: 'guess' }).expect(401)
    expect(JSON.stringify(wrong.body)).not.toContain('guess')
    const res = await request(h.app).post('/api/auth/login').send({ secret: ADMIN_SECRET }).expect(200)
    expect(res.body).toEqual({ kind: 'admin', via: 'cookie' })
    const header = String(res.headers['set-cookie'])
    expect(header).toMatch(/^sllm_session=[^;]+; Path=\/; HttpOnly; SameSite=Strict; Max-Age=\d+$/)
    expect(JSON.stringify(res.body)).not.toContain(ADMIN_SECRET)
    const cookie = sessionCookie(res)
    await request(h.app).get('/api/devices').set('Cookie', cookie).expect(200)
    const session = await request(h.app).get('/api/auth/session').set('Cookie', cookie).expect(200)
    expect(session.body).toEqual({ kind: 'admin', via: 'cookie' })
    expect((await request(h.app).get('/api/auth/session').set(ADMIN)).body).toEqual({
      kind: 'admin',
      via: 'bearer',
    })
    await request(h.app).get('/api/auth/session').expect(401)
    await request(h.app).post('/api/auth/logout').set('Cookie', cookie).expect(204)
    await request(h.app).get('/api/devices').set('Cookie', cookie).expect(401)
  })

  it('needs a same-origin Origin for unsafe cookie-authenticated requests', async () => {
    h = await setup()
    const cookie = sessionCookie(await request(h.app).post('/api/auth/login').send({ secret: ADMIN_SECRET }))
    const body = { name: 'x', ip: '10.0.0.2' }
    await request(h.app).post('/api/devices').set('Cookie', cookie).send(body).expect(403)
    await request(h.app)
      .post('/api/devices')
      .set('Cookie', cookie)
      .set('Origin', 'http://evil.example.com')
      .send(body)
      .expect(403)
    expect(await h.hub.devices.list()).toEqual([])
    const res = await request(h.app)
      .post('/api/devices')
      .set('Cookie', cookie)
      .send(body)
      .set('Origin', 'http://localhost') // supertest's Host is 127.0.0.1:<port>: not the same origin
    expect(res.status).toBe(403)
    // Same origin as the Host header: accepted. Bearer requests need no Origin.
    const agent = request(h.app).post('/api/devices')
    const ok = await agent
      .set('Host', 'localhost:9999')
      .set('Origin', 'http://localhost:9999')
      .set('Cookie', cookie)
      .send(body)
    expect(ok.status).toBe(201)
    await request(h.app).post('/api/devices').set(ADMIN).send({ name: 'y', ip: '10.0.0.3' }).expect(201)
  })

  it('turns the printed one-time login link into a session once', async () => {
    h = await setup()
    const token = await h.hub.admin.createLoginLink()
    const res = await request(h.app).get(`/login?token=${token}`).expect(303)
    expect(res.headers.location).toBe('/')
    await request(h.app).get('/api/devices').set('Cookie', sessionCookie(res)).expect(200)
    // Used or wrong: no cookie, the app's own login page instead.
    const again = await request(h.app).get(`/login?token=${token}`).expect(200)
    expect(again.headers['set-cookie']).toBeUndefined()
    expect(again.text).toContain('<div id="app">')
  })
})

describe('owner vs an admin-role device', () => {
  it("keeps settings, role edits and other devices' keys for the owner", async () => {
    h = await setup()
    const boss = await approvedDevice(h.hub, 'admin laptop', 'role-admin')
    const kid = await approvedDevice(h.hub, 'kid phone', 'role-guest')
    const as = { Authorization: `Bearer ${boss.key}` }
    const before = JSON.stringify({ s: h.hub.settings.all(), r: await h.hub.roles.list() })
    const refused = [
      request(h.app).get('/api/settings').set(as),
      request(h.app).put('/api/settings/host_reserve_mb').set(as).send({ value: 0 }),
      request(h.app).put('/api/settings/trust_local_network').set(as).send({ value: true }),
      request(h.app).post('/api/permissions/roles').set(as).send({ name: 'mine', max_memory_mb: 100 }),
      request(h.app).put('/api/permissions/roles/role-guest').set(as).send({ max_memory_mb: 99999 }),
      request(h.app).delete('/api/permissions/roles/role-guest').set(as),
      request(h.app).post(`/api/devices/${kid.deviceId}/rotate-key`).set(as),
      request(h.app).patch(`/api/devices/${boss.deviceId}/manage`).set(as).send({ can_manage: true }),
    ]
    const answers = await Promise.all(refused)
    answers.forEach((res, i) => {
      expect(res.status, `request ${i}`).toBe(403)
      expect(res.body.error).toMatch(/owner/)
    })
    expect(JSON.stringify({ s: h.hub.settings.all(), r: await h.hub.roles.list() })).toBe(before)
    // Still an admin for devices and models, and its own key is its own.
    await request(h.app).get('/api/devices').set(as).expect(200)
    await request(h.app).get('/api/permissions/roles').set(as).expect(200)
    const own = await request(h.app).post(`/api/devices/${boss.deviceId}/rotate-key`).set(as).expect(200)
    expect(own.body.device_key).toMatch(/^sllm_/)
  })

  it('lets the owner grant "manage" to an admin-role device, audited and announced', async () => {
    h = await setup()
    const boss = await approvedDevice(h.hub, 'admin laptop', 'role-admin')
    const kid = await approvedDevice(h.hub, 'kid phone', 'role-guest')
    const events: Array<{ action: string; actor: string; target: string | null }> = []
    h.hub.on('security_changed', (e) => events.push(e))
    await request(h.app)
      .patch(`/api/devices/${kid.deviceId}/manage`)
      .set(ADMIN)
      .send({ can_manage: true })
      .expect(409)
    await request(h.app)
      .patch(`/api/devices/${boss.deviceId}/manage`)
      .set(ADMIN)
      .send({ can_manage: 'yes' })
      .expect(400)
    const res = await request(h.app)
      .patch(`/api/devices/${boss.deviceId}/manage`)
      .set(ADMIN)
      .send({ can_manage: true })
      .expect(200)
    expect(res.body.device.can_manage).toBe(true)
    const as = { Authorization: `Bearer ${boss.key}` }
    await request(h.app).put('/api/settings/host_reserve_mb').set(as).send({ value: 1000 }).expect(200)
    await request(h.app).post(`/api/devices/${kid.deviceId}/rotate-key`).set(as).expect(200)
    expect(events.map((e) => [e.action, e.actor])).toEqual([
      ['device.grant_manage', 'admin'],
      ['setting.set', `device:${boss.deviceId}`],
      ['device.rotate_key', `device:${boss.deviceId}`],
    ])
    const audit = (await h.hub.auditLog({ limit: 3 })).map((a) => a.action)
    expect(audit).toEqual(['device.rotate_key', 'setting.set', 'device.grant_manage'])
    // Leaving the admin role ends the grant.
    await h.hub.devices.setAllocation(boss.deviceId, 1000)
    await h.hub.devices.setRole(boss.deviceId, 'role-user')
    expect((await h.hub.devices.get(boss.deviceId)).can_manage).toBe(false)
  })

  it('never lets the API set a code-running setting, even for the owner', async () => {
    h = await setup()
    for (const [key, value] of [
      ['ollama_bin', '/usr/bin/touch'],
      ['extra_providers', ['evil']],
    ] as const) {
      const res = await request(h.app).put(`/api/settings/${key}`).set(ADMIN).send({ value }).expect(403)
      expect(res.body.error).toMatch(/command line or the config file/)
    }
    const remote = await request(h.app)
      .put('/api/settings/ollama_host')
      .set(ADMIN)
      .send({ value: 'http://192.168.1.9:11434' })
      .expect(403)
    expect(remote.body.error).toMatch(/--allow-remote-ollama/)
    await request(h.app)
      .put('/api/settings/default_role')
      .set(ADMIN)
      .send({ value: 'role-admin' })
      .expect(400)
    expect(h.hub.settings.get('ollama_bin')).toBeNull()
    expect(h.hub.settings.get('default_role')).toBe('role-guest')
  })
})

describe('bodies, headers and CORS', () => {
  it('refuses oversized bodies with 413 and changes nothing', async () => {
    h = await setup({ app: { bodyLimit: 2048 } })
    const res = await request(h.app)
      .post('/api/devices')
      .set(ADMIN)
      .send({ name: 'x', ip: '10.0.0.1', platform: 'p'.repeat(4000) })
      .expect(413)
    expect(res.body.code).toBe('PAYLOAD_TOO_LARGE')
    expect(await h.hub.devices.list()).toEqual([])
  })

  it('sets the security headers and no CORS headers by default', async () => {
    h = await setup()
    const res = await request(h.app).get('/healthz').set('Origin', 'http://other.example')
    expect(res.headers['x-content-type-options']).toBe('nosniff')
    expect(res.headers['x-frame-options']).toBe('DENY')
    expect(res.headers['referrer-policy']).toBe('no-referrer')
    expect(res.headers['content-security-policy']).toContain("frame-ancestors 'none'")
    expect(res.headers['x-powered-by']).toBeUndefined()
    expect(res.headers['access-control-allow-origin']).toBeUndefined()
    expect((await request(h.app).get('/api/devices').set(ADMIN)).headers['cache-control']).toBe('no-store')
  })

  it('allows CORS for configured origins only, without credentials', async () => {
    h = await setup({ app: { corsOrigins: ['http://tools.lan:3000'] } })
    const pre = await request(h.app)
      .options('/api/devices')
      .set('Origin', 'http://tools.lan:3000')
      .set('Access-Control-Request-Method', 'POST')
      .expect(204)
    expect(pre.headers['access-control-allow-origin']).toBe('http://tools.lan:3000')
    expect(pre.headers['access-control-allow-credentials']).toBeUndefined()
    const other = await request(h.app).get('/healthz').set('Origin', 'http://evil.lan')
    expect(other.headers['access-control-allow-origin']).toBeUndefined()
  })
})

describe('PWA serving', () => {
  it('serves the shell, deep links with 200, and the right cache headers', async () => {
    h = await setup()
    const root = await request(h.app).get('/').expect(200)
    expect(root.text).toContain('<div id="app">')
    expect(root.headers['cache-control']).toBe('no-cache')
    const deep = await request(h.app).get('/devices/abc').expect(200)
    expect(deep.text).toBe(root.text)
    expect((await request(h.app).get('/sw.js').expect(200)).headers['cache-control']).toBe('no-cache')
    expect((await request(h.app).get('/manifest.webmanifest').expect(200)).headers['cache-control']).toBe(
      'no-cache',
    )
    expect((await request(h.app).get(`/${ASSET}`).expect(200)).headers['cache-control']).toContain(
      'immutable',
    )
    await request(h.app).get('/assets/missing-12345678.js').expect(404)
    await request(h.app).post('/devices').expect(404)
  })

  it('says the dashboard is not built when there is no index.html', async () => {
    h = await setup({ pwa: false })
    const res = await request(h.app).get('/devices').expect(503)
    expect(res.text).toContain('pnpm build')
    await request(h.app).get('/healthz').expect(200)
  })
})

describe('join: an approval is never inherited through an instance id', () => {
  it("POST /api/join with an approved admin peer's instance id files a new pending device, no key", async () => {
    h = await setup()
    const instance_id = 'b7b8c0de-0000-4000-8000-00000000beef'
    const device = await h.hub.db.transaction((trx) =>
      h.hub.devices.insert(trx, { name: 'gpu-box', source: 'mdns', ip: '10.0.0.7', instance_id }, 'mdns'),
    )
    const real = await h.hub.access.join({ name: 'gpu-box', instance_id }, '10.0.0.7')
    await h.hub.devices.approve(device.id, 'role-admin')
    const realKey = (await h.hub.access.claim(real.request_id, real.claim_secret, '10.0.0.7')).device_key!

    const forged = await request(h.app).post('/api/join').send({ name: 'gpu-box', instance_id }).expect(201)
    expect(forged.body.status).toBe('pending')
    expect(forged.body.device_id).not.toBe(device.id)
    const poll = await request(h.app)
      .get(`/api/join/${forged.body.request_id}`)
      .set('X-Claim-Secret', forged.body.claim_secret)
      .expect(200)
    expect(poll.body).toEqual({ status: 'pending', device_id: forged.body.device_id })
    // The real peer's key still works, and with it the peer re-joins as itself.
    await request(h.app).get('/api/me').set('Authorization', `Bearer ${realKey}`).expect(200)
    const rejoin = await request(h.app)
      .post('/api/join')
      .set('Authorization', `Bearer ${realKey}`)
      .send({ name: 'gpu-box', instance_id })
      .expect(201)
    expect(rejoin.body).toMatchObject({ status: 'approved', device_id: device.id })
  })
})

describe('words a device reads', () => {
  it('a device whose key was revoked is not told about admin credentials on the REST API', async () => {
    h = await setup()
    const { deviceId, key } = await approvedDevice(h.hub, 'phone', 'role-user')
    await h.hub.devices.revoke(deviceId)
    const res = await request(h.app).get('/api/me').set('Authorization', `Bearer ${key}`).expect(401)
    expect(res.body.error).toMatch(/key/)
    expect(JSON.stringify(res.body)).not.toMatch(/admin/i)
  })
})

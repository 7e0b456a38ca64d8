import { request } from 'node:http'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { ADMIN_SECRET, type GatewayHarness, get, post, startGateway, TEST_UA } from './gateway-harness'

const CHAT = (extra: Record<string, unknown> = {}) => ({
  model: 'qwen3:1.7b',
  messages: [{ role: 'user', content: 'hi' }],
  stream: false,
  ...extra,
})

/** A streamed chat through node:http; resolves with the status once the answer ended. */
function stream(url: string, key: string, body: unknown): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(url, {
      method: 'POST',
      headers: { Authorization: `Bearer ${key}`, 'content-type': 'application/json', 'user-agent': TEST_UA },
    })
    req.on('response', (res) => {
      res.resume()
      res.on('end', () => resolve(res.statusCode ?? 0))
    })
    req.on('error', reject)
    req.end(JSON.stringify(body))
  })
}

describe('admission', () => {
  let h: GatewayHarness

  beforeAll(async () => {
    // Streams last ~200 ms, so parallel ones overlap; Ollama runs 4 at once (OLLAMA_NUM_PARALLEL), so the
    // fair-share queue lets up to 4 through and only the role's max_concurrent limits a device.
    h = await startGateway({
      fake: { chunks: 5, chunkDelayMs: 40 },
      hub: { settings: { ollama_num_parallel: 4 } },
    })
  })
  afterAll(() => h.close())
  beforeEach(async () => {
    await h.fake?.clearRequests()
  })
  const forwarded = async (path?: string) =>
    (await h.fake!.requests()).filter(
      (r) => r.headers['user-agent'] === TEST_UA && (path === undefined || r.path === path),
    )

  it.each([
    [1, 20],
    [3, 24],
  ])(
    '%i concurrent streams allowed and none may wait, %i sent at once: exactly that many admitted, the rest 429',
    async (k, n) => {
      const roleId = await h.role({
        name: `parallel-${k}`,
        max_memory_mb: 8192,
        max_concurrent: k,
        max_queued: 0,
      })
      const { key, deviceId } = await h.device(`parallel-${k}`, roleId)
      const statuses = await Promise.all(
        Array.from({ length: n }, (_, i) =>
          i % 2 === 0
            ? stream(`${h.url}/ollama/api/chat`, key, CHAT({ stream: true }))
            : stream(`${h.url}/v1/chat/completions`, key, CHAT({ stream: true })),
        ),
      )
      expect(statuses.filter((s) => s === 200)).toHaveLength(k)
      expect(statuses.filter((s) => s === 429)).toHaveLength(n - k)
      expect((await forwarded()).filter((r) => r.path !== '/api/tags' && r.path !== '/api/ps')).toHaveLength(
        k,
      )
      expect(h.hub.policy.activeStreams(deviceId)).toBe(0)
    },
  )

  it('the policy itself: 20 parallel admits against max_concurrent 2 give 2 admissions', async () => {
    const roleId = await h.role({
      name: 'policy-parallel',
      max_memory_mb: 8192,
      max_concurrent: 2,
      max_queued: 0,
    })
    const { deviceId, key } = await h.device('policy-parallel', roleId)
    const principal = await h.hub.access.authenticate(key)
    const route = (await import('../src/index')).GATEWAY_ROUTES.get('/ollama/api/chat')!
    const results = await Promise.allSettled(
      Array.from({ length: 20 }, () => h.hub.policy.admit(principal!, route, CHAT())),
    )
    const admitted = results.filter((r) => r.status === 'fulfilled')
    expect(admitted).toHaveLength(2)
    expect(h.hub.policy.activeStreams(deviceId)).toBe(2)
    for (const r of admitted) (r as PromiseFulfilledResult<{ release(): void }>).value.release()
    expect(h.hub.policy.activeStreams(deviceId)).toBe(0)
  })

  it('a refused admission frees its slot (no leak on the refusal paths)', async () => {
    const roleId = await h.role({ name: 'leak', max_memory_mb: 4096, max_concurrent: 1 })
    const { key, deviceId } = await h.device('leak', roleId)
    for (const body of [
      CHAT({ model: 'hermes3:8b' }), // does not fit
      CHAT({ Model: 'qwen3:1.7b' }), // folded key
      CHAT({ options: { num_gpu: 99 } }),
      '{"model":',
    ]) {
      const res = await post(`${h.url}/ollama/api/chat`, key, body)
      expect(res.status).toBeGreaterThanOrEqual(400)
      expect(h.hub.policy.activeStreams(deviceId)).toBe(0)
    }
    expect((await post(`${h.url}/ollama/api/chat`, key, CHAT())).status).toBe(200)
  })

  it('list routes count against the rate limit', async () => {
    const roleId = await h.role({
      name: 'lister',
      max_memory_mb: 4096,
      requests_per_minute: 5,
      max_concurrent: 4,
    })
    const { key } = await h.device('lister', roleId)
    const paths = [
      '/ollama/api/tags',
      '/ollama/api/ps',
      '/v1/models',
      '/ollama/api/version',
      '/ollama/api/tags',
    ]
    for (const p of paths) expect((await get(`${h.url}${p}`, key)).status, p).toBe(200)
    const refused = await get(`${h.url}/ollama/api/tags`, key)
    expect(refused.status).toBe(429)
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(0)
    expect((await post(`${h.url}/ollama/api/chat`, key, CHAT())).status).toBe(429)
  })

  it('/ollama/api/ps shows what the role may see, by the same rule as the models_running event', async () => {
    const roleId = await h.role({ name: 'ps-kids', max_memory_mb: 4096, allowed_models: ['cogito*'] })
    const { key } = await h.device('ps-kid', roleId)
    // Something is loaded (the fake loads what it ran).
    expect((await post(`${h.url}/ollama/api/chat`, ADMIN_SECRET, CHAT())).status).toBe(200)
    h.hub.bus.emit('models_running', { models: [] }) // the list cache follows the poll's news
    const admin = (await get(`${h.url}/ollama/api/ps`, ADMIN_SECRET))
      .json()
      .models.map((m: { name: string }) => m.name)
    expect(admin).toContain('qwen3:1.7b')
    const kid = (await get(`${h.url}/ollama/api/ps`, key)).json().models.map((m: { name: string }) => m.name)
    expect(kid).not.toContain('qwen3:1.7b')
    const viewer = h.hub.policy.viewer((await h.hub.access.authenticate(key))!)
    const { runningVisibleTo } = await import('../src/index')
    expect(runningVisibleTo(viewer, { name: 'cogito:3b', size: 2e9 })).toBe(true)
    expect(runningVisibleTo(viewer, { name: 'cogito:70b', size: 40e9 })).toBe(false)
    expect(runningVisibleTo(viewer, { name: 'qwen3:1.7b', size: 1e9 })).toBe(false)
  })

  it('32 concurrent list requests cost one upstream read of each list (one refresh at a time)', async () => {
    const roleId = await h.role({ name: 'stampede', max_memory_mb: 4096, max_concurrent: 64 })
    const { key } = await h.device('stampede', roleId)
    h.hub.policy.invalidate()
    await h.fake?.clearRequests()
    const paths = ['/ollama/api/tags', '/ollama/api/ps', '/v1/models']
    // Lists cached by an earlier test expire first (the cache lasts 5 s; the harness starts it fresh).
    const answers = await Promise.all(
      Array.from({ length: 96 }, (_, i) => get(`${h.url}${paths[i % 3]}`, key)),
    )
    for (const a of answers) expect(a.status).toBe(200)
    const seen = await h.fake!.requests()
    const count = (p: string) => seen.filter((r) => r.path === p).length
    // At most one read by the gateway's list cache and one by the policy's fit catalog, per list.
    expect(count('/api/tags')).toBeLessThanOrEqual(2)
    expect(count('/api/ps')).toBeLessThanOrEqual(2)
    expect(count('/v1/models')).toBeLessThanOrEqual(1)
  })
})

describe('the outgoing body is built from Ollama’s exact field names', () => {
  let h: GatewayHarness
  let user: { deviceId: string; key: string }
  let guest: { deviceId: string; key: string }

  beforeAll(async () => {
    h = await startGateway()
    user = await h.device('laptop')
    await h.hub.roles.update('role-guest', { max_memory_mb: 4096, requests_per_minute: 1000 })
    guest = await h.device('tablet', 'role-guest')
  })
  afterAll(() => h.close())
  beforeEach(async () => {
    await h.fake?.clearRequests()
  })
  const sent = async (path: string) =>
    (await h.fake!.requests())
      .filter((r) => r.headers['user-agent'] === TEST_UA && r.path === path)
      .map((r) => r.body)

  it.each([
    ['Model', { Model: 'hermes3:8b' }, 'model'],
    ['MODEL', { MODEL: 'hermes3:8b' }, 'model'],
    ['KEEP_ALIVE', { KEEP_ALIVE: -1 }, 'keep_alive'],
    ['OPTIONS', { OPTIONS: { num_ctx: 1_000_000 } }, 'options'],
    ['Kelvin sign', { '\u212Aeep_alive': -1 }, 'keep_alive'],
    ['long s', { '\u017Ftream': true }, 'stream'],
    ['Messages', { Messages: [] }, 'messages'],
  ])(
    'a key that folds to a field (%s) is a 400 naming the key, and nothing is forwarded',
    async (_, extra, field) => {
      const body = { ...CHAT(), ...extra }
      const key = Object.keys(extra)[0] as string
      for (const path of ['/ollama/api/chat', '/v1/chat/completions']) {
        // OpenAI's request has no keep_alive or options: there the key folds to nothing and is dropped.
        if (path.startsWith('/v1') && (field === 'keep_alive' || field === 'options')) continue
        const res = await post(`${h.url}${path}`, user.key, body)
        expect(res.status, `${path} ${key}`).toBe(400)
        const message = path.startsWith('/v1') ? res.json().error.message : res.json().error
        expect(message).toContain(JSON.stringify(key))
        expect(message).toContain(`"${field}"`)
      }
      expect(await sent('/api/chat')).toEqual([])
      expect(await sent('/v1/chat/completions')).toEqual([])
    },
  )

  it('unknown keys are dropped; the model checked is the model sent; `name` never rides along', async () => {
    const res = await post(`${h.url}/ollama/api/chat`, user.key, {
      ...CHAT(),
      name: 'hermes3:8b',
      insecure: true,
      whatever: { deep: 1 },
    })
    expect(res.status).toBe(200)
    // keep_alive and the context are always the gateway's: the user role's 30 min, the default 4096 tokens.
    expect(await sent('/api/chat')).toEqual([{ ...CHAT(), keep_alive: 1800, options: { num_ctx: 4096 } }])
  })

  it('options for a non-admin role: sampling kept, load-time options a 400 naming the option, num_predict bounded', async () => {
    for (const opt of ['num_gpu', 'num_batch', 'num_thread', 'use_mmap', 'numa', 'main_gpu', 'low_vram']) {
      const res = await post(`${h.url}/ollama/api/generate`, user.key, {
        model: 'qwen3:1.7b',
        prompt: 'x',
        stream: false,
        options: { temperature: 0.2, [opt]: 1 },
      })
      expect(res.status, opt).toBe(400)
      expect(res.json()).toMatchObject({ code: 'VALIDATION', details: { field: `options.${opt}` } })
      expect(res.json().error).toContain(`options.${opt}`)
    }
    for (const bad of [-1, 1.5, '100']) {
      const res = await post(`${h.url}/ollama/api/chat`, user.key, CHAT({ options: { num_predict: bad } }))
      expect(res.status, String(bad)).toBe(400)
      expect(res.json().error).toMatch(/options\.num_predict/)
    }
    expect(await sent('/api/generate')).toEqual([])
    await h.fake?.clearRequests()
    // Guest: num_predict at most 2048, sent even when the request names none; "options": null is none.
    const asked = [
      { options: { num_predict: 1_000_000, temperature: 0.5, Num_Ctx: 99999, mirostat: 2 } },
      { options: null },
      { options: { num_predict: 0 } },
    ]
    for (const extra of asked) {
      expect((await post(`${h.url}/ollama/api/chat`, guest.key, CHAT(extra))).status).toBe(200)
    }
    const guestRole = (await h.hub.roles.list()).find((r) => r.id === 'role-guest')!
    const ka = guestRole.max_keep_alive_s
    expect(await sent('/api/chat')).toEqual([
      { ...CHAT(), keep_alive: ka, options: { num_predict: 2048, temperature: 0.5, num_ctx: 4096 } },
      { ...CHAT(), keep_alive: ka, options: { num_predict: 2048, num_ctx: 4096 } },
      { ...CHAT(), keep_alive: ka, options: { num_predict: 0, num_ctx: 4096 } },
    ])
    // OpenAI: translated to /api/chat, max_tokens becoming num_predict as openai/openai.go does.
    await h.fake?.clearRequests()
    const oa = await post(`${h.url}/v1/chat/completions`, guest.key, CHAT({ max_tokens: 100_000 }))
    expect(oa.status).toBe(200)
    expect(await sent('/v1/chat/completions')).toEqual([])
    expect((await sent('/api/chat'))[0]).toMatchObject({
      stream: false,
      keep_alive: ka,
      options: { num_predict: 2048, num_ctx: 4096, temperature: 1, top_p: 1 },
    })
    const negative = await post(`${h.url}/v1/completions`, guest.key, {
      model: 'qwen3:1.7b',
      prompt: 'x',
      max_tokens: -1,
    })
    expect(negative.status).toBe(400)
    expect(negative.json().error.param).toBe('max_tokens')
  })

  it('the admin role’s options and the owner’s go through as given', async () => {
    const { key } = await h.device('workstation', 'role-admin')
    for (const k of [key, ADMIN_SECRET]) {
      await h.fake?.clearRequests()
      const res = await post(
        `${h.url}/ollama/api/chat`,
        k,
        CHAT({ options: { num_gpu: 10, num_batch: 256, num_predict: -1 } }),
      )
      expect(res.status).toBe(200)
      const body = (await sent('/api/chat'))[0] as { keep_alive?: unknown }
      expect(body).toMatchObject({ options: { num_gpu: 10, num_batch: 256, num_predict: -1, num_ctx: 4096 } })
      // The admin role has no keep_alive maximum: Ollama's documented 5 min is sent, not the attached
      // Ollama's OLLAMA_KEEP_ALIVE; the owner's own requests leave it to the owner's Ollama.
      expect(body.keep_alive).toBe(k === key ? 300 : undefined)
    }
  })

  it('body limits per role: 1 MiB for user and guest, 16 MiB for admin, refused before it is all read', async () => {
    const big = (mib: number) => CHAT({ pad: 'x'.repeat(mib * 1024 * 1024) })
    const user2 = await post(`${h.url}/ollama/api/chat`, user.key, big(2))
    expect(user2.status).toBe(413)
    expect(user2.json().error).toMatch(/larger than 1048576 bytes/)
    const { key } = await h.device('bigbody', 'role-admin')
    expect((await post(`${h.url}/ollama/api/chat`, key, big(2))).status).toBe(200)
    expect((await post(`${h.url}/ollama/api/chat`, key, big(17))).status).toBe(413)
  })
})

describe('the owner’s dashboard session on the gateway', () => {
  let h: GatewayHarness
  let session: string

  beforeAll(async () => {
    h = await startGateway()
    session = (await h.hub.admin.login(ADMIN_SECRET)).session
  })
  afterAll(() => h.close())

  it('authenticates as the owner from a same-origin page, and never cross-origin', async () => {
    const origin = h.url
    const cookie = { Cookie: `sllm_session=${session}` }
    const ok = await post(`${h.url}/ollama/api/chat`, null, CHAT(), { ...cookie, Origin: origin })
    expect(ok.status).toBe(200)
    // The owner's principal: models outside every slice are listed.
    const tags = await fetch(`${h.url}/ollama/api/tags`, { headers: cookie })
    expect(((await tags.json()) as { models: unknown[] }).models).toHaveLength(16)
    const noOrigin = await post(`${h.url}/ollama/api/chat`, null, CHAT(), cookie)
    expect(noOrigin.status).toBe(403)
    const evil = await post(`${h.url}/ollama/api/chat`, null, CHAT(), {
      ...cookie,
      Origin: 'http://evil.example',
    })
    expect(evil.status).toBe(403)
    expect(evil.json().error).toMatch(/cross-origin/)
    const wrong = await post(`${h.url}/ollama/api/chat`, null, CHAT(), {
      Cookie: 'sllm_session=not-a-session',
      Origin: origin,
    })
    expect(wrong.status).toBe(401)
    // Logged out: the cookie is dead on the gateway too.
    await h.hub.admin.logout(session)
    expect((await post(`${h.url}/ollama/api/chat`, null, CHAT(), { ...cookie, Origin: origin })).status).toBe(
      401,
    )
  })
})

describe('body bytes in flight per device', () => {
  let h: GatewayHarness

  beforeAll(async () => {
    h = await startGateway({ gateway: { bodyBytesPerDevice: 4 * 1024 * 1024 } })
  })
  afterAll(() => h.close())

  it('a device sending several big bodies at once is held to the cap (429), each within its role limit', async () => {
    const roleId = await h.role({
      name: 'uploader',
      max_memory_mb: 4096,
      max_concurrent: 8,
      max_body_bytes: 3 * 1024 * 1024,
    })
    const { key } = await h.device('uploader', roleId)
    const head = Buffer.from(
      `{"model":"qwen3:1.7b","messages":[],"stream":false,"pad":"${'x'.repeat(1536 * 1024)}`,
    )
    const tail = Buffer.from('"}')
    let wrote = 0
    let release: () => void = () => {}
    const allWrote = new Promise<void>((r) => {
      release = r
    })
    const one = () =>
      new Promise<number>((resolve, reject) => {
        const req = request(`${h.url}/ollama/api/chat`, {
          method: 'POST',
          headers: {
            Authorization: `Bearer ${key}`,
            'content-type': 'application/json',
            'user-agent': TEST_UA,
          },
        })
        req.on('response', (res) => {
          res.resume()
          res.on('end', () => resolve(res.statusCode ?? 0))
        })
        req.on('error', reject)
        // Half of every body first; the rest once all four halves are on their way.
        req.write(head, () => {
          if (++wrote === 4) setTimeout(release, 200)
        })
        void allWrote.then(() => req.end(tail))
      })
    const statuses = await Promise.all([one(), one(), one(), one()])
    // 4 × 1.5 MiB in flight against a 4 MiB cap: at least one is told to wait, at least two get through.
    expect(statuses.filter((s) => s === 429).length).toBeGreaterThanOrEqual(1)
    expect(statuses.filter((s) => s === 200).length).toBeGreaterThanOrEqual(2)
    for (const s of statuses) expect([200, 429]).toContain(s)
    // Nothing stays counted: four more, one after another, all pass.
    for (let i = 0; i < 4; i++) {
      expect(
        (await post(`${h.url}/ollama/api/chat`, key, CHAT({ pad: 'y'.repeat(2 * 1024 * 1024) }))).status,
      ).toBe(200)
    }
  })
})

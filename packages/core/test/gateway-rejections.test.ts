import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { ADMIN_SECRET, type GatewayHarness, get, post, startGateway, TEST_UA } from './gateway-harness'

const CHAT = (model = 'qwen3:1.7b', extra: Record<string, unknown> = {}) => ({
  model,
  messages: [{ role: 'user', content: 'hi' }],
  stream: false,
  ...extra,
})

// Every rejection happens before Ollama is touched: each test checks the fake's request log too.
describe('gateway rejections', () => {
  let h: GatewayHarness
  let user: { deviceId: string; key: string }
  let guest: { deviceId: string; key: string }

  beforeAll(async () => {
    h = await startGateway({ gateway: { bodyLimit: 64 * 1024 } })
    user = await h.device('laptop')
    guest = await h.device('kid-tablet', 'role-guest')
  })
  afterAll(() => h.close())
  beforeEach(async () => {
    await h.fake?.clearRequests()
  })
  // What the gateway forwarded for this test's requests (the policy's own catalog reads are not ours).
  const forwarded = async () =>
    (await h.fake!.requests())
      .filter((r) => r.headers['user-agent'] === TEST_UA)
      .map((r) => `${r.method} ${r.path}`)

  describe('401: missing, unknown and revoked keys get the same answer', () => {
    it('on the Ollama API', async () => {
      const { deviceId, key } = await h.device('old-phone')
      await h.hub.devices.revoke(deviceId)
      const answers = await Promise.all([
        post(`${h.url}/ollama/api/chat`, null, CHAT()),
        post(`${h.url}/ollama/api/chat`, 'sllm_unknownunknownunknownunknown', CHAT()),
        post(`${h.url}/ollama/api/chat`, key, CHAT()),
        post(`${h.url}/ollama/api/chat`, null, CHAT(), { Authorization: `Basic ${btoa(`x:${user.key}`)}` }),
        // A cookie that is not a live owner session is no credential (the admin secret is not a session).
        post(`${h.url}/ollama/api/chat`, null, CHAT(), { Cookie: `sllm_session=${ADMIN_SECRET}` }),
      ])
      for (const a of answers) {
        expect(a.status).toBe(401)
        expect(a.headers.get('www-authenticate')).toMatch(/^Bearer/)
        expect(a.text).toBe(answers[0]?.text)
      }
      expect(answers[0]?.json()).toMatchObject({ code: 'UNAUTHORIZED' })
      expect(answers[0]?.json().error).toMatch(/Authorization: Bearer/)
      expect(await forwarded()).toEqual([])
    })

    it('on the OpenAI API, in OpenAI’s error shape', async () => {
      const a = await get(`${h.url}/v1/models`, null)
      const b = await get(`${h.url}/v1/models`, 'sllm_nope')
      expect(a.status).toBe(401)
      expect(a.text).toBe(b.text)
      expect(a.json()).toMatchObject({
        code: 'UNAUTHORIZED',
        error: { type: 'authentication_error', code: 'UNAUTHORIZED' },
      })
      expect(a.json().error.message).toMatch(/Bearer/)
    })
  })

  it('paths outside the allowlist are 404 for devices and the admin, and never forwarded', async () => {
    const paths: [string, string][] = [
      ['POST', '/ollama/api/create'],
      ['POST', '/ollama/api/push'],
      ['POST', '/ollama/api/copy'],
      ['DELETE', '/ollama/api/delete'],
      ['POST', '/ollama/api/blobs/sha256:29fdb92e57cf082e'],
      ['HEAD', '/ollama/api/blobs/sha256:29fdb92e57cf082e'],
      ['POST', '/ollama/api/chat/'],
      ['POST', '/ollama/api/%63hat'],
      ['POST', '/ollama/api/../api/delete'],
      ['POST', '/OLLAMA/api/chat'],
      ['GET', '/ollama/api'],
      ['GET', '/v1/files'],
      ['POST', '/v1/responses'],
    ]
    for (const key of [user.key, ADMIN_SECRET]) {
      for (const [method, path] of paths) {
        const res = await fetch(`${h.url}${path}`, {
          method,
          headers: { Authorization: `Bearer ${key}`, 'user-agent': TEST_UA },
          ...(method === 'POST' ? { body: '{"model":"qwen3:1.7b","name":"qwen3:1.7b"}' } : {}),
        })
        // Express normalises nothing here; '/OLLAMA' is not ours and falls through to the app (404 too).
        expect(res.status, `${method} ${path}`).toBe(404)
        await res.arrayBuffer()
      }
    }
    expect(await forwarded()).toEqual([])
  })

  it('a listed path with the wrong method is 405 with Allow', async () => {
    const res = await get(`${h.url}/ollama/api/chat`, user.key)
    expect(res.status).toBe(405)
    expect(res.headers.get('allow')).toBe('POST')
    expect(res.json().code).toBe('METHOD_NOT_ALLOWED')
    const del = await fetch(`${h.url}/v1/models`, {
      method: 'DELETE',
      headers: { Authorization: `Bearer ${user.key}` },
    })
    expect(del.status).toBe(405)
    expect(await forwarded()).toEqual([])
  })

  it('403: a model outside the role’s list, for every model endpoint', async () => {
    const roleId = await h.role({
      name: 'qwen only',
      max_memory_mb: 8192,
      allowed_models: ['qwen3*'],
      can_pull: true,
    })
    const { key } = await h.device('qwen-box', roleId)
    const ok = await post(`${h.url}/ollama/api/chat`, key, CHAT('qwen3:1.7b'))
    expect(ok.status).toBe(200)
    // The log check below is not vacuous: an admitted request shows up in it.
    expect(await forwarded()).toEqual(['POST /api/chat'])
    await h.fake?.clearRequests()
    for (const [path, body] of [
      ['/ollama/api/chat', CHAT('mistral:7b')],
      ['/ollama/api/generate', { model: 'mistral:7b', prompt: 'x' }],
      ['/ollama/api/embed', { model: 'mistral:7b', input: 'x' }],
      ['/ollama/api/embeddings', { model: 'mistral:7b', prompt: 'x' }],
      ['/ollama/api/show', { name: 'mistral:7b' }],
      ['/ollama/api/pull', { model: 'mistral:7b' }],
      ['/v1/chat/completions', CHAT('mistral:7b')],
      ['/v1/completions', { model: 'mistral:7b', prompt: 'x' }],
      ['/v1/embeddings', { model: 'mistral:7b', input: 'x' }],
    ] as const) {
      const res = await post(`${h.url}${path}`, key, body)
      expect(res.status, path).toBe(403)
      expect(res.text).toContain("may not use model 'mistral:7b'")
    }
    expect(await forwarded()).toEqual([])
  })

  it('403: a model that does not fit the slice says how much it needs and how much the device has', async () => {
    const res = await post(`${h.url}/ollama/api/chat`, user.key, CHAT('hermes3:8b'))
    expect(res.status).toBe(403)
    const body = res.json()
    expect(body.code).toBe('FORBIDDEN')
    // 4445 MiB weights + 512 MiB KV cache at 4096 tokens (32 layers × 8 KV heads × 256 × f16) + 256 MiB overhead.
    expect(body.error).toMatch(
      /needs about 52\d\d MiB at 4096 tokens of context but device 'laptop' has 4096 MiB/,
    )
    expect(body.details).toMatchObject({ allocation_mb: 4096 })
    const oa = await post(`${h.url}/v1/chat/completions`, user.key, CHAT('hermes3:8b'))
    expect(oa.status).toBe(403)
    expect(oa.json().error).toMatchObject({ type: 'permission_error' })
    expect(oa.json().error.message).toMatch(/has 4096 MiB/)
    expect(await forwarded()).toEqual([])
  })

  it('403: a bigger context makes a model that fits at the default context not fit', async () => {
    const res = await post(
      `${h.url}/ollama/api/chat`,
      user.key,
      CHAT('qwen3:1.7b', { options: { num_ctx: 32768 } }),
    )
    expect(res.status).toBe(403)
    expect(res.json().error).toMatch(/at 32768 tokens of context/)
  })

  it('pull: refused for a role that cannot pull, and for bad or foreign names', async () => {
    const refused = await post(`${h.url}/ollama/api/pull`, guest.key, { model: 'qwen3:0.6b' })
    expect(refused.status).toBe(403)
    expect(refused.json().error).toMatch(/cannot pull models/)
    for (const model of [
      '../../etc/passwd',
      'a b',
      '/abs',
      'evil.example.com/x/y',
      'x\\y',
      '',
      42,
      'x:local:cloud',
    ]) {
      const res = await post(`${h.url}/ollama/api/pull`, user.key, { model })
      expect(res.status, String(model)).toBe(400)
      expect(res.json()).toMatchObject({ code: 'VALIDATION', details: { field: 'model' } })
    }
    // Show resolves names as Ollama does too: a name with two sources is refused before anything else.
    const show = await post(`${h.url}/ollama/api/show`, user.key, { model: 'qwen3:local:cloud' })
    expect(show.status).toBe(400)
    expect(show.json().error).toMatch(/either :local or :cloud/)
    expect(await forwarded()).toEqual([])
  })

  it('429 with Retry-After: requests per minute', async () => {
    const roleId = await h.role({
      name: 'slow',
      max_memory_mb: 8192,
      requests_per_minute: 2,
      max_concurrent: 4,
    })
    const { key } = await h.device('slow-box', roleId)
    expect((await post(`${h.url}/ollama/api/chat`, key, CHAT())).status).toBe(200)
    expect((await post(`${h.url}/ollama/api/chat`, key, CHAT())).status).toBe(200)
    await h.fake?.clearRequests()
    const res = await post(`${h.url}/ollama/api/chat`, key, CHAT())
    expect(res.status).toBe(429)
    expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0)
    expect(res.json()).toMatchObject({ code: 'RATE_LIMITED' })
    expect(res.json().error).toMatch(/2 requests per minute/)
    const oa = await post(`${h.url}/v1/chat/completions`, key, CHAT())
    expect(oa.status).toBe(429)
    expect(oa.json().error.type).toBe('rate_limit_error')
    expect(await forwarded()).toEqual([])
  })

  it('400 for bodies that are not JSON objects, name no model, or carry bad options; 413 when too large', async () => {
    const cases: [unknown, RegExp][] = [
      ['{"model": "qwen3:1.7b",', /not valid JSON/],
      ['[1,2]', /must be a JSON object/],
      ['"text"', /must be a JSON object/],
      [{ messages: [] }, /model: required/],
      [{ model: null }, /model: required/],
      [{ model: 'qwen3:1.7b', options: 'x' }, /options: must be an object/],
      [{ model: 'qwen3:1.7b', options: { num_ctx: -5 } }, /num_ctx/],
      // Nested past what JSON.stringify can write out again (a 500 before): refused as the body it is.
      [
        `{"model":"qwen3:1.7b","messages":[],"format":${'['.repeat(5000)}${']'.repeat(5000)}}`,
        /the request body nests deeper than 512 levels/,
      ],
    ]
    for (const [body, message] of cases) {
      const res = await post(`${h.url}/ollama/api/chat`, user.key, body)
      expect(res.status, JSON.stringify(body)).toBe(400)
      expect(res.json().error).toMatch(message)
    }
    const big = await post(`${h.url}/ollama/api/chat`, user.key, {
      model: 'qwen3:1.7b',
      pad: 'x'.repeat(70 * 1024),
    })
    // The OpenAI route's tool call arguments are JSON in a string: the same bound.
    const deepArgs = await post(`${h.url}/v1/chat/completions`, user.key, {
      model: 'qwen3:1.7b',
      messages: [
        {
          role: 'assistant',
          content: '',
          tool_calls: [
            { id: 'c1', type: 'function', function: { name: 'f', arguments: '['.repeat(20_000) } },
          ],
        },
      ],
    })
    expect(deepArgs.status).toBe(400)
    expect(deepArgs.json().error.message).toMatch(/tool call arguments nest deeper than 512 levels/)
    expect(big.status).toBe(413)
    expect(big.json().code).toBe('PAYLOAD_TOO_LARGE')
    expect(await forwarded()).toEqual([])
  })

  it('/metrics: 401 without a key, 403 for a device, text for the owner', async () => {
    expect((await get(`${h.url}/metrics`, null)).status).toBe(401)
    expect((await get(`${h.url}/metrics`, user.key)).status).toBe(403)
    const ok = await get(`${h.url}/metrics`, ADMIN_SECRET)
    expect(ok.status).toBe(200)
    expect(ok.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/)
    // The rejections above were counted by reason.
    expect(ok.text).toMatch(/sharedllm_rejections_total\{reason="rate_limit"\} \d+/)
    expect(ok.text).toMatch(/sharedllm_rejections_total\{reason="model_not_allowed"\} \d+/)
    expect(ok.text).toMatch(/sharedllm_rejections_total\{reason="does_not_fit"\} \d+/)
    expect(ok.text).toMatch(/sharedllm_rejections_total\{reason="pull_forbidden"\} \d+/)
    expect(ok.text).toContain('sharedllm_ollama_up 1')
  })
})

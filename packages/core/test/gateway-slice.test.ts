import type { IncomingMessage, ServerResponse } from 'node:http'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { GATEWAY_ROUTES } from '../src/index'
import { resolveModelName } from '../src/ollama/index'
import {
  ADMIN_SECRET,
  bearer,
  type GatewayHarness,
  get,
  type Json,
  type MockUpstream,
  post,
  startGateway,
  startJsonUpstream,
  TEST_UA,
} from './gateway-harness'

/**
 * The slice against names, cloud models, loaded sizes and Ollama's statuses, with an upstream that
 * answers as Ollama does (its list holds a cloud stub with a remote_host, as `ollama pull x:cloud` makes).
 */
const LLAMA_INFO = {
  'general.architecture': 'llama',
  'llama.block_count': 32,
  'llama.attention.head_count': 32,
  'llama.attention.head_count_kv': 8,
  'llama.attention.key_length': 128,
  'llama.attention.value_length': 128,
  'llama.embedding_length': 4096,
  'llama.context_length': 131072,
  'llama.vocab_size': 128256,
}
const TAGS = [
  { name: 'llama3.3:70b', model: 'llama3.3:70b', size: 42_520_413_916, digest: 'big' },
  { name: 'llama3.2:latest', model: 'llama3.2:latest', size: 2_019_393_189, digest: 'small' },
  {
    name: 'gpt-oss:120b-cloud',
    model: 'gpt-oss:120b-cloud',
    size: 384,
    digest: 'cloud',
    remote_model: 'gpt-oss:120b',
    remote_host: 'https://ollama.com:443',
  },
]

let running: Json[] = []
let busy = false
let slowMs = 0
const forwarded: { path: string; body: Json }[] = []

function handler(req: IncomingMessage, res: ServerResponse, body: Json) {
  const path = req.url ?? ''
  const json = (status: number, v: unknown, headers: Record<string, string> = {}) => {
    res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', ...headers })
    res.end(JSON.stringify(v))
  }
  if (req.method === 'HEAD' || path === '/') return json(200, {})
  if (path === '/api/tags') return json(200, { models: TAGS })
  if (path === '/api/ps') return json(200, { models: running })
  if (path === '/api/version') return json(200, { version: '0.33.0' })
  if (path === '/api/show') {
    // Plain /api/show leaves the per-layer arrays out as null; verbose has them.
    return json(200, {
      model_info: body.verbose
        ? LLAMA_INFO
        : { ...LLAMA_INFO, 'llama.attention.head_count_kv': null, 'llama.vocab_size': undefined },
    })
  }
  forwarded.push({ path, body })
  if (busy) return json(503, { error: 'server busy, please try again.  maximum pending requests exceeded' })
  const answer = () =>
    json(200, {
      model: body.model,
      created_at: new Date().toISOString(),
      message: { role: 'assistant', content: 'ok' },
      done: true,
      done_reason: 'stop',
      prompt_eval_count: 1,
      eval_count: 1,
    })
  if (slowMs > 0) setTimeout(answer, slowMs)
  else answer()
}

describe('names, cloud models, loaded sizes and statuses', () => {
  let upstream: MockUpstream
  let h: GatewayHarness
  let guest: string
  let user: string
  let userDevice: string

  beforeAll(async () => {
    upstream = await startJsonUpstream(handler)
    h = await startGateway({
      fake: false,
      upstream: upstream.url,
      gateway: { headersTimeoutMs: 200, listCacheMs: 0 },
    })
    await h.hub.roles.update('role-guest', {
      max_memory_mb: 16384,
      requests_per_minute: 1000,
      max_concurrent: 4,
    })
    ;({ key: guest } = await h.device('tablet', 'role-guest'))
    await h.hub.roles.update('role-user', { max_memory_mb: 16384, max_concurrent: 4 })
    ;({ key: user, deviceId: userDevice } = await h.device('laptop', 'role-user'))
    await h.hub.devices.setAllocation(userDevice, 6144)
  })
  afterAll(async () => {
    await h?.close()
    await upstream?.close()
  })
  beforeEach(() => {
    forwarded.length = 0
    setRunning([])
    busy = false
    slowMs = 0
  })
  /** What Ollama has loaded; the policy's short cache of it is dropped. */
  const setRunning = (list: Json[]) => {
    running = list
    h?.hub.policy.invalidate()
  }

  const chat = (model: string, extra: Json = {}) => ({
    model,
    messages: [{ role: 'user', content: 'hi' }],
    stream: false,
    ...extra,
  })

  it('resolves names as types/model/name.go and internal/modelref do', () => {
    expect(resolveModelName('registry.ollama.ai/library/llama3.3:70b').display).toBe('llama3.3:70b')
    expect(resolveModelName('library/Llama3.3:70B').display).toBe('llama3.3:70b')
    expect(resolveModelName('llama3.2:local')).toMatchObject({ source: 'local', display: 'llama3.2:latest' })
    expect(resolveModelName('gpt-oss:120b-cloud')).toMatchObject({
      source: 'cloud',
      base: 'gpt-oss:120b',
      display: 'gpt-oss:120b-cloud',
    })
    expect(resolveModelName('gpt-oss:20b:cloud')).toMatchObject({
      source: 'cloud',
      display: 'gpt-oss:20b-cloud',
    })
    expect(resolveModelName('kimi-k2:cloud').display).toBe('kimi-k2:cloud')
    // The cloud stub is not the local model of the same base name.
    expect(resolveModelName('gpt-oss:20b').display).toBe('gpt-oss:20b')
    expect(resolveModelName('qwen3-coder:480b:CLOUD').source).toBe('cloud')
    expect(resolveModelName('hf.co/bartowski/Qwen:Q4_K_M')).toMatchObject({
      host: 'hf.co',
      namespace: 'bartowski',
      display: 'hf.co/bartowski/qwen:q4_k_m',
    })
    expect(() => resolveModelName('llama3:local:cloud')).toThrow(/either :local or :cloud/)
  })

  it('every alias of a refused model gets the canonical verdict, and none is forwarded', async () => {
    await h.hub.roles.update('role-guest', { allowed_models: ['llama3.2'] })
    try {
      for (const name of [
        'llama3.3:70b',
        'library/llama3.3:70b',
        'registry.ollama.ai/library/llama3.3:70b',
        'LLAMA3.3:70B',
        'llama3.3:70b:local',
      ]) {
        const res = await post(`${h.url}/ollama/api/chat`, guest, chat(name))
        expect(res.status, name).toBe(403)
        expect(res.json().error, name).toMatch(/may not use model 'llama3.3:70b'/)
      }
      // The allowed one under its aliases: forwarded under the installed name.
      for (const name of ['llama3.2', 'library/llama3.2:latest', 'llama3.2:local', 'Llama3.2']) {
        const res = await post(`${h.url}/ollama/api/chat`, guest, chat(name))
        expect(res.status, name).toBe(200)
      }
      expect(forwarded.map((f) => f.body.model)).toEqual(Array(4).fill('llama3.2:latest'))
      // Usage is recorded under the one resolved name too.
      await expect
        .poll(async () => (await h.hub.policy.usageReport()).recent.filter((u) => u.status === 200).length)
        .toBeGreaterThanOrEqual(4)
      const models = new Set(
        (await h.hub.policy.usageReport()).recent.filter((u) => u.status === 200).map((u) => u.model),
      )
      expect(models).toEqual(new Set(['llama3.2:latest']))
    } finally {
      await h.hub.roles.update('role-guest', { allowed_models: [] })
    }
  })

  it('each alias gets the fit verdict of the canonical name', async () => {
    for (const name of ['llama3.3:70b', 'library/llama3.3:70b', 'registry.ollama.ai/library/llama3.3:70b']) {
      const res = await post(`${h.url}/ollama/api/chat`, user, chat(name))
      expect(res.status, name).toBe(403)
      expect(res.json().error).toMatch(/model 'llama3.3:70b' needs about \d+ MiB at 4096 tokens of context/)
    }
    expect(forwarded).toEqual([])
  })

  it('a model that is not installed is a 404 from the gateway, never forwarded', async () => {
    for (const name of ['qwen3:32b', 'someone/thing', 'llama3.2:1b']) {
      const res = await post(`${h.url}/ollama/api/chat`, user, chat(name))
      expect(res.status, name).toBe(404)
      expect(res.json()).toMatchObject({ code: 'MODEL_NOT_FOUND', error: `model '${name}' not found` })
    }
    expect(forwarded).toEqual([])
  })

  it('cloud models are refused unless the setting and the role allow them, and marked where listed', async () => {
    for (const name of [
      'gpt-oss:120b-cloud',
      'gpt-oss:120b:cloud',
      'deepseek-v3.1:671b-cloud',
      'kimi-k2:cloud',
    ]) {
      const res = await post(`${h.url}/ollama/api/chat`, user, chat(name))
      expect(res.status, name).toBe(403)
      expect(res.json().error).toMatch(/cloud model.*leaves the network.*cloud_models_enabled/)
    }
    await h.hub.settings.set('cloud_models_enabled', true)
    try {
      const res = await post(`${h.url}/ollama/api/chat`, user, chat('gpt-oss:120b-cloud'))
      expect(res.status).toBe(403)
      expect(res.json().error).toMatch(/role 'user' may not use cloud models \(allow_cloud\)/)
      // A role with allow_cloud (migration 008) may: forwarded as named, with no num_ctx (nothing loads
      // here) and no fit check against the slice; listed to it, marked.
      await h.hub.roles.update('role-user', { allow_cloud: true })
      const ok = await post(`${h.url}/ollama/api/chat`, user, chat('gpt-oss:120b-cloud'))
      expect(ok.status).toBe(200)
      expect(forwarded.at(-1)?.body.model).toBe('gpt-oss:120b-cloud')
      expect(forwarded.at(-1)?.body.options?.num_ctx).toBeUndefined()
      const me = await h.hub.policy.me((await h.hub.access.authenticate(user))!)
      expect(me.models.find((m) => m.name === 'gpt-oss:120b-cloud')).toMatchObject({
        cloud: true,
        cloud_note: 'cloud, leaves the network',
      })
      await h.hub.roles.update('role-user', { allow_cloud: false })
      forwarded.length = 0
      const views = await h.hub.policy.modelViews()
      expect(views.find((v) => v.name === 'gpt-oss:120b-cloud')).toMatchObject({
        cloud: true,
        cloud_note: 'cloud, leaves the network',
      })
      expect(views.find((v) => v.name === 'llama3.2:latest')?.cloud).toBe(false)
    } finally {
      await h.hub.settings.set('cloud_models_enabled', false)
    }
    // The owner with the setting off: refused too.
    const owner = await post(`${h.url}/ollama/api/chat`, ADMIN_SECRET, chat('gpt-oss:120b-cloud'))
    expect(owner.status).toBe(403)
    expect(forwarded).toEqual([])
    // Nor pulled (a cloud pull makes a stub that runs on ollama.com).
    const pull = await post(`${h.url}/ollama/api/pull`, user, { model: 'kimi-k2:cloud' })
    expect(pull.status).toBe(403)
    expect(pull.json().error).toMatch(/cloud model/)
    const show = await post(`${h.url}/ollama/api/show`, user, { model: 'kimi-k2:cloud' })
    expect(show.status).toBe(403)
    // Not listed to the device either.
    const tags = await get(`${h.url}/ollama/api/tags`, user)
    expect(tags.json().models.map((m: Json) => m.name)).not.toContain('gpt-oss:120b-cloud')
  })

  it('the context is always sent: min(requested or default, role maximum, trained context)', async () => {
    expect((await post(`${h.url}/ollama/api/chat`, user, chat('llama3.2'))).status).toBe(200)
    // Clamped to the user role's 32768 before the estimate, which is then over the 6 GiB slice.
    const big = await post(
      `${h.url}/ollama/api/chat`,
      user,
      chat('llama3.2', { options: { num_ctx: 1_000_000 } }),
    )
    expect(big.json().error).toMatch(/at 32768 tokens of context/)
    await post(`${h.url}/ollama/api/chat`, user, chat('llama3.2', { options: { num_ctx: 8192 } }))
    // The owner: no role cap, but never past the trained context (llama.context_length 131072).
    await post(
      `${h.url}/ollama/api/chat`,
      ADMIN_SECRET,
      chat('llama3.2', { options: { num_ctx: 1_000_000 } }),
    )
    await post(`${h.url}/ollama/api/chat`, ADMIN_SECRET, chat('llama3.2'))
    expect(forwarded.map((f) => f.body.options.num_ctx)).toEqual([4096, 8192, 131072, 4096])
  })

  it('load small, then ask big: the loaded size is trusted only at the context it was loaded with', async () => {
    // llama3.2 loaded at 2048 tokens: small.
    setRunning([
      {
        name: 'llama3.2:latest',
        model: 'llama3.2:latest',
        size: 2_400_000_000,
        size_vram: 2_400_000_000,
        digest: 'small',
        context_length: 2048,
      },
    ])
    const small = await post(
      `${h.url}/ollama/api/chat`,
      user,
      chat('llama3.2', { options: { num_ctx: 2048 } }),
    )
    expect(small.status).toBe(200)
    // 32768 tokens need 4 GiB of KV on top: over the 6 GiB slice, whatever the loaded size says.
    const big = await post(
      `${h.url}/ollama/api/chat`,
      user,
      chat('llama3.2', { options: { num_ctx: 32768 } }),
    )
    expect(big.status).toBe(403)
    expect(big.json().error).toMatch(/at 32768 tokens of context/)
    expect(forwarded).toHaveLength(1)
  })

  it('after a load, the measured size against the estimate is stored per digest, applied, and exported', async () => {
    const est = await h.hub.policy.estimate('llama3.2', 8192)
    expect(est?.source).toBe('estimate')
    const measured = Math.round(est!.totalBytes * 1.08)
    setRunning([
      {
        name: 'llama3.2:latest',
        model: 'llama3.2:latest',
        size: measured,
        size_vram: measured,
        digest: 'small',
        context_length: 8192,
      },
    ])
    h.hub.bus.emit('models_running', { models: await h.hub.models.running() })
    await expect
      .poll(
        async () => (await h.hub.policy.modelViews()).find((v) => v.name === 'llama3.2:latest')?.measurement,
      )
      .toMatchObject({ context_length: 8192, ratio: 1.08 })
    setRunning([])
    const later = await h.hub.policy.estimate('llama3.2', 16384)
    const raw = await h.hub.policy.estimate('llama3.3:70b', 16384)
    expect(later?.ratio).toBeCloseTo(1.08, 3)
    expect(raw?.ratio).toBe(1)
    const metrics = await get(`${h.url}/metrics`, ADMIN_SECRET)
    expect(metrics.text).toMatch(/sharedllm_fit_estimate_ratio\{model="llama3.2:latest"\} 1.08/)
    // Stored in SQLite: a fresh read finds it.
    const row = await h.hub.db('fit_ratios').where({ digest: 'small' }).first()
    expect(row).toMatchObject({ model: 'llama3.2:latest', context_length: 8192, measured_bytes: measured })
  })

  it('Ollama’s 503 (queue full) is a 503 with Retry-After', async () => {
    busy = true
    const res = await post(`${h.url}/ollama/api/chat`, user, chat('llama3.2'))
    expect(res.status).toBe(503)
    expect(res.headers.get('retry-after')).toBe('1')
    expect(res.json().error).toMatch(/Ollama is busy \(503\): server busy/)
    const oa = await post(`${h.url}/v1/chat/completions`, user, chat('llama3.2'))
    expect(oa.status).toBe(503)
    expect(oa.headers.get('retry-after')).toBe('1')
  })

  it('a non-streaming answer has no header deadline; a streaming one keeps it', async () => {
    slowMs = 600 // three times the 200 ms header deadline of this gateway
    const res = await post(`${h.url}/ollama/api/chat`, user, chat('llama3.2'))
    expect(res.status).toBe(200)
    const oa = await post(`${h.url}/v1/chat/completions`, user, chat('llama3.2'))
    expect(oa.status).toBe(200)
    const streaming = await post(`${h.url}/ollama/api/chat`, user, chat('llama3.2', { stream: true }))
    expect(streaming.status).toBe(504)
  })

  it('GET and HEAD / (the Go client’s heartbeat), HEAD version and tags, and context_length 0 in ps', async () => {
    for (const path of ['/ollama', '/ollama/']) {
      const g = await fetch(`${h.url}${path}`, { headers: { ...bearer(user), 'user-agent': TEST_UA } })
      expect(await g.text()).toBe('Ollama is running')
      const head = await fetch(`${h.url}${path}`, { method: 'HEAD', headers: bearer(user) })
      expect(head.status).toBe(200)
    }
    for (const path of ['/ollama/api/version', '/ollama/api/tags']) {
      const head = await fetch(`${h.url}${path}`, { method: 'HEAD', headers: bearer(user) })
      expect(head.status, path).toBe(200)
      expect(await head.text()).toBe('')
    }
    setRunning([
      {
        name: 'llama3.2:latest',
        model: 'llama3.2:latest',
        size: 2_000_000_000,
        size_vram: 0,
        digest: 'small',
        context_length: 0,
      },
    ])
    expect((await h.hub.models.running())[0]?.context_length).toBeNull()
  })

  it('the delete guard sees the resolved name: a model in use under an alias cannot be deleted under another', async () => {
    const principal = (await h.hub.access.authenticate(user))!
    const held = await h.hub.policy.admit(
      principal,
      GATEWAY_ROUTES.get('/ollama/api/chat')!,
      chat('library/llama3.2'),
    )
    expect(held.model).toBe('llama3.2:latest')
    try {
      for (const name of ['llama3.2', 'registry.ollama.ai/library/llama3.2:latest', 'LLAMA3.2:latest']) {
        await expect(h.hub.models.delete(name), name).rejects.toMatchObject({ code: 'MODEL_IN_USE' })
      }
    } finally {
      held.release()
    }
    expect(h.hub.policy.modelInUse('llama3.2')).toBe(false)
  })
})

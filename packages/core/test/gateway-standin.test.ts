import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type GatewayHarness, type Json, post, startGateway } from './gateway-harness'

/**
 * Against the stand-in Ollama (testing-assets/fake-ollama), whose /api/ps size follows Ollama's own
 * estimator and grows with the context, on a simulated 80 GiB GPU (Ollama's default context there is
 * 262144, capped at the trained one).
 */
describe('the slice against the stand-in on an 80 GiB GPU', () => {
  let h: GatewayHarness

  beforeAll(async () => {
    h = await startGateway({ fake: { vram: '80GiB', extraModels: 'all' } })
  }, 60_000)
  afterAll(() => h?.close())

  const ps = async (): Promise<Json[]> =>
    ((await (await fetch(`${h.fake!.url}/api/ps`)).json()) as Json).models
  const unloadAll = async () => {
    for (const m of await ps()) {
      await fetch(`${h.fake!.url}/api/generate`, {
        method: 'POST',
        body: JSON.stringify({ model: m.name, keep_alive: 0 }),
      })
    }
    await expect.poll(async () => (await ps()).length, { timeout: 10_000 }).toBe(0)
  }

  it('the estimate is within ±10 % of the loaded size for every GGUF model (above it for MLX), at 4k, 32k and the trained context', async () => {
    const tags: Json[] = ((await (await fetch(`${h.fake!.url}/api/tags`)).json()) as Json).models
    const local = tags.filter((m) => !m.remote_host)
    expect(local.length).toBeGreaterThanOrEqual(20)
    const rows: string[] = []
    const off: string[] = []
    for (const m of local) {
      const show: Json = await (
        await fetch(`${h.fake!.url}/api/show`, { method: 'POST', body: JSON.stringify({ model: m.name }) })
      ).json()
      const arch = show.model_info['general.architecture']
      const trained = show.model_info[`${arch}.context_length`] as number
      for (const ctx of [...new Set([4096, 32768, trained].filter((c) => c <= trained))]) {
        const embedding = Array.isArray(show.capabilities) && !show.capabilities.includes('completion')
        const load = await fetch(`${h.fake!.url}/api/${embedding ? 'embed' : 'generate'}`, {
          method: 'POST',
          body: JSON.stringify({
            model: m.name,
            keep_alive: -1,
            options: { num_ctx: ctx },
            ...(embedding ? { input: 'x' } : {}),
          }),
        })
        expect(load.status, `${m.name} ${ctx}`).toBe(200)
        await load.arrayBuffer()
        const loaded = (await ps()).find((r) => r.name === m.name)
        expect(loaded?.context_length, m.name).toBe(ctx)
        const est = await h.hub.policy.estimate(m.name, ctx, { measured: false })
        const ratio = est!.totalBytes / loaded.size
        rows.push(
          `${m.name} @${ctx}: estimate ${est!.totalBytes} measured ${loaded.size} (${ratio.toFixed(3)})`,
        )
        if (m.details?.format === 'safetensors') {
          // An MLX runner reports what it holds (the weights; its cache grows with the tokens), so the
          // estimate at num_ctx is above it and marked conservative (no head_dim in its model_info).
          if (ratio < 1 || !est!.conservative) off.push(rows.at(-1) as string)
        } else if (ratio < 0.9 || ratio > 1.1) off.push(rows.at(-1) as string)
        await unloadAll()
      }
    }
    expect(off, rows.join('\n')).toEqual([])
  }, 240_000)

  it('every route without num_ctx (native, /v1, the PWA chat) leaves context_length within the role cap and size within the slice', async () => {
    // Ollama alone would load at 262144 here (the 80 GiB tier); a default of 65536 shows the role cap too.
    await h.hub.settings.set('default_context_tokens', 65536)
    await h.hub.roles.update('role-guest', {
      max_memory_mb: 4096,
      requests_per_minute: 1000,
      max_concurrent: 2,
    })
    const guest = await h.device('tablet', 'role-guest') // max_context_tokens 8192
    const guestRole = (await h.hub.roles.list()).find((r) => r.id === 'role-guest')!
    const device = (await h.hub.devices.list()).find((d) => d.id === guest.deviceId)!
    const calls: [string, Json][] = [
      [
        '/ollama/api/chat',
        { model: 'llama3.2:1b', messages: [{ role: 'user', content: 'hi' }], stream: false },
      ],
      // The PWA's own chat body (pwa/src/api/chat.ts).
      [
        '/ollama/api/chat',
        { model: 'llama3.2:1b', messages: [{ role: 'user', content: 'hi' }], stream: true },
      ],
      ['/ollama/api/generate', { model: 'llama3.2:1b', prompt: 'hi', stream: false }],
      ['/ollama/api/embed', { model: 'all-minilm:l6-v2', input: 'hi' }],
      ['/ollama/api/embeddings', { model: 'all-minilm:l6-v2', prompt: 'hi' }],
      ['/v1/chat/completions', { model: 'llama3.2:1b', messages: [{ role: 'user', content: 'hi' }] }],
      ['/v1/completions', { model: 'llama3.2:1b', prompt: 'hi' }],
      ['/v1/embeddings', { model: 'all-minilm:l6-v2', input: 'hi' }],
    ]
    try {
      for (const [path, body] of calls) {
        await unloadAll()
        const res = await post(`${h.url}${path}`, guest.key, body)
        expect(res.status, `${path} ${res.text.slice(0, 200)}`).toBe(200)
        const [loaded] = await ps()
        expect(loaded, path).toBeDefined()
        // all-minilm's trained context is 512: the cap below the role's.
        expect(loaded.context_length, path).toBeLessThanOrEqual(
          Math.min(guestRole.max_context_tokens!, 65536),
        )
        expect(loaded.size, path).toBeLessThanOrEqual(device.allocation_mb * 1024 * 1024)
      }
    } finally {
      await h.hub.settings.set('default_context_tokens', 4096)
      await unloadAll()
    }
  })

  it('aliases get the canonical verdict, names not installed are 404, cloud names are refused; none reaches Ollama', async () => {
    const guest = await h.device('phone', 'role-guest')
    await h.fake!.clearRequests()
    for (const name of [
      'qwen3:30b',
      'library/qwen3:30b',
      'registry.ollama.ai/library/qwen3:30b',
      'QWEN3:30B',
      'qwen3:30b:local',
    ]) {
      const res = await post(`${h.url}/ollama/api/chat`, guest.key, {
        model: name,
        messages: [{ role: 'user', content: 'x' }],
      })
      expect(res.status, name).toBe(403)
      expect(res.json().error, name).toMatch(/^model 'qwen3:30b' needs about \d+ MiB/)
    }
    for (const name of ['llama3.3:70b', 'library/llama3.3:70b', 'registry.ollama.ai/library/llama3.3:70b']) {
      const res = await post(`${h.url}/ollama/api/chat`, guest.key, {
        model: name,
        messages: [{ role: 'user', content: 'x' }],
      })
      expect(res.status, name).toBe(404)
    }
    for (const name of ['gpt-oss:20b-cloud', 'gpt-oss:20b:cloud', 'gpt-oss:120b-cloud']) {
      const res = await post(`${h.url}/v1/chat/completions`, guest.key, {
        model: name,
        messages: [{ role: 'user', content: 'x' }],
      })
      expect(res.status, name).toBe(403)
      expect(res.json().error.message).toMatch(/cloud model/)
    }
    const inference = (await h.fake!.requests()).filter((r) => /chat|generate|embed|completions/.test(r.path))
    expect(inference).toEqual([])
  })

  it('load small, then ask big: refused, though the small load fits', async () => {
    const user = await h.device('desk', 'role-user')
    // 4 GiB: qwen3:1.7b fits at 4096 tokens (about 1.9 GiB) and not at 32768 (about 5.9 GiB).
    await h.hub.devices.setAllocation(user.deviceId, 4096)
    await unloadAll()
    const chat = (num_ctx: number) => ({
      model: 'qwen3:1.7b',
      messages: [{ role: 'user', content: 'x' }],
      stream: false,
      options: { num_ctx },
    })
    expect((await post(`${h.url}/ollama/api/chat`, user.key, chat(4096))).status).toBe(200)
    expect((await ps())[0]).toMatchObject({ name: 'qwen3:1.7b', context_length: 4096 })
    h.hub.policy.invalidate()
    const big = await post(`${h.url}/ollama/api/chat`, user.key, chat(32768))
    expect(big.status).toBe(403)
    expect(big.json().error).toMatch(/at 32768 tokens of context/)
    expect((await ps())[0]?.context_length).toBe(4096)
    await unloadAll()
  })

  it('an MLX model loaded big by one device: a small request of another runs at that context, so it is checked there', async () => {
    const M = 'qwen3-0.6b-mlx'
    const owner = await h.device('mac-owner', 'role-admin')
    const kid = await h.device('kid-tablet', 'role-user')
    // 2 GiB: the 1.2 GB of weights plus a 4096-token cache fit; a 32768-token cache (about 3.8 GB) does not.
    await h.hub.devices.setAllocation(kid.deviceId, 2048)
    await unloadAll()
    const chat = (num_ctx: number) => ({
      model: M,
      messages: [{ role: 'user', content: 'x' }],
      stream: false,
      options: { num_ctx },
    })
    expect((await post(`${h.url}/ollama/api/chat`, kid.key, chat(4096))).status).toBe(200)
    await unloadAll()
    expect((await post(`${h.url}/ollama/api/chat`, owner.key, chat(32768))).status).toBe(200)
    await expect.poll(async () => (await ps())[0]?.context_length).toBe(32768)
    h.hub.policy.invalidate()
    // The runner stays at 32768 whatever num_ctx comes (sched.go needsReload skips MLX options).
    const small = await post(`${h.url}/ollama/api/chat`, kid.key, chat(4096))
    expect(small.status).toBe(403)
    expect(small.json().error).toMatch(/at 32768 tokens of context/)
    await unloadAll()
  })
})

describe('a slow non-streaming answer against the stand-in', () => {
  let h: GatewayHarness
  beforeAll(async () => {
    // 20 tokens/s: an answer of ~25 pieces takes over a second, four times this gateway's header deadline.
    h = await startGateway({ fake: { tokensPerSecond: 20 }, gateway: { headersTimeoutMs: 300 } })
  }, 60_000)
  afterAll(() => h?.close())

  it('completes: no header deadline for non-streaming requests (Ollama sends headers at the end)', async () => {
    const { key } = await h.device('slow')
    const words = Array.from({ length: 20 }, (_, i) => `w${i}`).join(' ')
    const started = performance.now()
    const res = await post(`${h.url}/ollama/api/chat`, key, {
      model: 'qwen3:1.7b',
      messages: [{ role: 'user', content: words }],
      stream: false,
    })
    expect(res.status, res.text).toBe(200)
    expect(performance.now() - started).toBeGreaterThan(300)
    expect(res.json().message.content).toContain('w19')
    const oa = await post(`${h.url}/v1/chat/completions`, key, {
      model: 'qwen3:1.7b',
      messages: [{ role: 'user', content: words }],
    })
    expect(oa.status, oa.text).toBe(200)
  }, 30_000)
})

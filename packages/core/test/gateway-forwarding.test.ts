import { request } from 'node:http'
import type { UsageRecord } from '../src/index'
import { freeLoopbackPort } from '../src/testing/index'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  ADMIN_SECRET,
  type GatewayHarness,
  get,
  type MockUpstream,
  post,
  startGateway,
  startMockUpstream,
  TEST_UA,
} from './gateway-harness'

const CHAT = (extra: Record<string, unknown> = {}) => ({
  model: 'qwen3:1.7b',
  messages: [{ role: 'user', content: 'hello' }],
  ...extra,
})

/** Streams a POST through node:http, noting when each chunk arrived. */
function streamChunks(
  url: string,
  key: string,
  body: unknown,
): Promise<{ status: number; chunks: { at: number; text: string }[]; error?: Error; endedAt: number }> {
  return new Promise((resolve) => {
    const chunks: { at: number; text: string }[] = []
    const req = request(url, {
      method: 'POST',
      headers: { Authorization: `Bearer ${key}`, 'content-type': 'application/json', 'user-agent': TEST_UA },
    })
    req.on('response', (res) => {
      res.on('data', (c: Buffer) => chunks.push({ at: performance.now(), text: c.toString() }))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, chunks, endedAt: performance.now() }))
      res.on('error', (error) =>
        resolve({ status: res.statusCode ?? 0, chunks, error, endedAt: performance.now() }),
      )
    })
    req.on('error', (error) => resolve({ status: 0, chunks, error, endedAt: performance.now() }))
    req.end(JSON.stringify(body))
  })
}

describe('forwarding to the fake Ollama', () => {
  let h: GatewayHarness
  let user: { deviceId: string; key: string }

  beforeAll(async () => {
    // 8 chunks 40 ms apart: a stream lasts ~300 ms.
    h = await startGateway({ fake: { chunks: 8, chunkDelayMs: 40 } })
    user = await h.device('laptop')
  })
  afterAll(() => h.close())

  it('rewrites keep_alive and num_ctx to the role’s maximum, strips credentials, sets Host', async () => {
    const roleId = await h.role({
      name: 'clamped',
      max_memory_mb: 8192,
      max_keep_alive_s: 120,
      max_context_tokens: 4096,
      max_concurrent: 4,
    })
    const { key } = await h.device('clamped-box', roleId)
    await h.fake?.clearRequests()
    const asked = [
      { keep_alive: -1, options: { num_ctx: 65536, temperature: 0.5 } },
      { keep_alive: '1m' },
      {},
    ]
    for (const extra of asked) {
      const res = await post(`${h.url}/ollama/api/chat`, key, CHAT({ stream: false, ...extra }), {
        Cookie: 'sllm_session=abc',
        Origin: 'http://evil.example',
      })
      expect(res.status).toBe(200)
    }
    const seen = (await h.fake!.requests()).filter((r) => r.path === '/api/chat')
    expect(seen.map((r) => r.body)).toEqual([
      { ...CHAT({ stream: false }), keep_alive: 120, options: { num_ctx: 4096, temperature: 0.5 } },
      // Always seconds as a number (a string like "300" would be Ollama's 400).
      { ...CHAT({ stream: false }), keep_alive: 60, options: { num_ctx: 4096 } },
      // None asked: the role's maximum, never Ollama's OLLAMA_KEEP_ALIVE; and the context is always sent.
      { ...CHAT({ stream: false }), keep_alive: 120, options: { num_ctx: 4096 } },
    ])
    for (const r of seen) {
      expect(r.headers.authorization).toBeUndefined()
      expect(r.headers.cookie).toBeUndefined()
      expect(r.headers.origin).toBeUndefined()
      expect(r.headers.host).toBe(h.fake?.host)
      expect(r.headers['user-agent']).toBe(TEST_UA)
    }
  })

  it('streams chunk by chunk as Ollama writes them', async () => {
    const started = performance.now()
    const r = await streamChunks(`${h.url}/ollama/api/chat`, user.key, CHAT({ stream: true }))
    expect(r.status).toBe(200)
    const lines = r.chunks.flatMap((c) => c.text.split('\n').filter(Boolean))
    expect(lines).toHaveLength(9) // 8 content lines + the final one
    // Each line arrived on its own, spread over the stream's life, not all at the end.
    expect(r.chunks.length).toBe(9)
    const first = r.chunks[0]!.at - started
    const last = r.chunks.at(-1)!.at - started
    expect(last - first).toBeGreaterThan(200)
  })

  it('429 with Retry-After when the role’s concurrent streams are in use, and Ollama is not asked', async () => {
    const roleId = await h.role({ name: 'one stream', max_memory_mb: 8192, max_concurrent: 1, max_queued: 0 })
    const { key, deviceId } = await h.device('single', roleId)
    const first = streamChunks(`${h.url}/ollama/api/chat`, key, CHAT({ stream: true }))
    await expect.poll(() => h.hub.policy.activeStreams(deviceId)).toBe(1)
    await h.fake?.clearRequests()
    const second = await post(`${h.url}/v1/chat/completions`, key, CHAT({ stream: true }))
    expect(second.status).toBe(429)
    expect(second.headers.get('retry-after')).toBe('1')
    expect(second.json().error.message).toMatch(/allows 1 request at a time/)
    expect((await h.fake!.requests()).filter((r) => r.headers['user-agent'] === TEST_UA)).toEqual([])
    expect((await first).status).toBe(200)
    expect(h.hub.policy.activeStreams(deviceId)).toBe(0)
    expect((await post(`${h.url}/ollama/api/chat`, key, CHAT({ stream: false }))).status).toBe(200)
  })

  it('revoking a device mid-stream cuts its stream within 1 s', async () => {
    const { key, deviceId } = await h.device('revoked-mid-stream')
    const pending = streamChunks(`${h.url}/ollama/api/chat`, key, CHAT({ stream: true }))
    await expect.poll(() => h.hub.policy.activeStreams(deviceId)).toBe(1)
    await new Promise((r) => setTimeout(r, 60))
    const revokedAt = performance.now()
    await h.hub.devices.revoke(deviceId)
    const r = await pending
    expect(r.error).toBeDefined() // cut, not a clean end
    expect(r.endedAt - revokedAt).toBeLessThan(1000)
    const lines = r.chunks.flatMap((c) => c.text.split('\n').filter(Boolean))
    expect(lines.length).toBeLessThan(9)
    expect(h.hub.policy.activeStreams(deviceId)).toBe(0)
    expect((await post(`${h.url}/ollama/api/chat`, key, CHAT({ stream: false }))).status).toBe(401)
  })

  it('an Ollama 5xx is a 502 with Ollama’s message; an error inside a stream passes through', async () => {
    const res = await post(`${h.url}/ollama/api/chat`, user.key, {
      model: 'qwen3:1.7b',
      messages: [{ role: 'user', content: '__fake_error__' }],
      stream: false,
    })
    expect(res.status).toBe(502)
    expect(res.json()).toMatchObject({ code: 'UPSTREAM_ERROR' })
    expect(res.json().error).toMatch(
      /Ollama failed \(500\): an error was encountered while running the model/,
    )

    const usage: UsageRecord[] = []
    const off = h.hub.on('usage', (u) => usage.push(u))
    const streamed = await post(`${h.url}/ollama/api/chat`, user.key, {
      model: 'qwen3:1.7b',
      messages: [{ role: 'user', content: 'x __fake_error__' }],
    })
    expect(streamed.status).toBe(200)
    expect(streamed.text.trim().split('\n').at(-1)).toBe(
      '{"error":"an error was encountered while running the model"}',
    )
    await expect.poll(() => usage.length).toBe(1)
    expect(usage[0]).toMatchObject({ status: 502, endpoint: 'ollama:/api/chat' })
    off()
  })

  it('usage events and /metrics count requests and tokens per device and model', async () => {
    const usage: UsageRecord[] = []
    const off = h.hub.on('usage', (u) => usage.push(u))
    const res = await post(`${h.url}/v1/completions`, user.key, { model: 'qwen3:1.7b', prompt: 'a b c' })
    expect(res.status).toBe(200)
    expect(res.json().usage.completion_tokens).toBe(8)
    const emb = await post(`${h.url}/ollama/api/embed`, user.key, {
      model: 'qwen3:1.7b',
      input: ['one two', 'three'],
    })
    expect(emb.status).toBe(200)
    await expect.poll(() => usage.length).toBe(2)
    off()
    expect(usage[0]).toMatchObject({
      device_id: user.deviceId,
      endpoint: 'openai:/v1/completions',
      completion_tokens: 8,
    })
    expect(usage[1]).toMatchObject({ endpoint: 'ollama:/api/embed', prompt_tokens: 3, completion_tokens: 0 })
    const metrics = (await get(`${h.url}/metrics`, ADMIN_SECRET)).text
    const labels = `device="${user.deviceId}",endpoint="openai:/v1/completions",model="qwen3:1.7b",status="200"`
    expect(metrics).toContain(`sharedllm_requests_total{${labels}} 1`)
    expect(metrics).toMatch(
      new RegExp(
        `sharedllm_tokens_total\\{device="${user.deviceId}",kind="completion",model="qwen3:1.7b"\\} \\d+`,
      ),
    )
    expect(metrics).toContain(`sharedllm_active_streams{device="${user.deviceId}"} 0`)
  })

  it('lists: the admin sees every model; ps and version pass through; show is the role’s', async () => {
    const tags = await get(`${h.url}/ollama/api/tags`, ADMIN_SECRET)
    expect(tags.json().models).toHaveLength(16)
    const models = await get(`${h.url}/v1/models`, ADMIN_SECRET)
    expect(models.json()).toMatchObject({ object: 'list' })
    expect(models.json().data).toHaveLength(16)
    const version = await get(`${h.url}/ollama/api/version`, user.key)
    expect(version.json()).toEqual({ version: '0.10.1' })
    const ps = await get(`${h.url}/ollama/api/ps`, user.key)
    expect(ps.status).toBe(200)
    expect(ps.json().models.map((m: { name: string }) => m.name)).toContain('qwen3:1.7b')
    const show = await post(`${h.url}/ollama/api/show`, user.key, { name: 'qwen3:1.7b' })
    expect(show.status).toBe(200)
    expect(show.json().model_info['qwen3.block_count']).toBe(28)
    // A model too big for the slice can still be shown (metadata), unlike run.
    expect((await post(`${h.url}/ollama/api/show`, user.key, { model: 'hermes3:8b' })).status).toBe(200)
  })

  it('pull: runs in the model manager (the owner sees its progress), sends only the model name, announces the new model', async () => {
    const pulled: string[] = []
    const progress: string[] = []
    const off = h.hub.on('model_pulled', ({ name }) => pulled.push(name))
    const offProgress = h.hub.on('model_pull_progress', ({ name }) => progress.push(name))
    await h.fake?.clearRequests()
    const res = await post(`${h.url}/ollama/api/pull`, user.key, { model: 'smollm2:135m', insecure: true })
    expect(res.status).toBe(200)
    expect(res.text.trim().split('\n').at(-1)).toBe('{"status":"success"}')
    const sent = (await h.fake!.requests()).find((r) => r.path === '/api/pull')
    // The manager's own request: the name and a stream, never `insecure` or credentials.
    expect(sent?.body).toEqual({ model: 'smollm2:135m', stream: true })
    expect(pulled).toEqual(['smollm2:135m'])
    expect(progress.length).toBeGreaterThan(0)
    expect(new Set(progress)).toEqual(new Set(['smollm2:135m']))
    off()
    offProgress()
    const tags = await get(`${h.url}/ollama/api/tags`, user.key)
    expect(tags.json().models.map((m: { name: string }) => m.name)).toContain('smollm2:135m')
  })
})

describe('upstream trouble and client disconnects', () => {
  let h: GatewayHarness
  let key: string
  let mock: MockUpstream
  const closes: { path: string; at: number }[] = []

  beforeAll(async () => {
    // An upstream that streams forever (until the socket closes), hangs on /api/generate, and cuts
    // /api/embed halfway.
    mock = await startMockUpstream((req, res) => {
      req.resume()
      // The gateway reads the model list (a model that is not installed is a 404 there, never forwarded).
      if (req.url === '/api/tags') {
        res.writeHead(200, { 'content-type': 'application/json' })
        res.end(
          JSON.stringify({ models: [{ name: 'qwen3:1.7b', model: 'qwen3:1.7b', size: 1000, digest: 'd1' }] }),
        )
        return
      }
      if (req.url === '/api/show' || req.url === '/api/ps') {
        res.writeHead(200, { 'content-type': 'application/json' })
        res.end(req.url === '/api/ps' ? '{"models":[]}' : '{"model_info":{}}')
        return
      }
      if (req.url === '/api/generate') return // never answers
      if (req.url === '/api/embed') {
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': '100' })
        res.write('{"embeddings":[[0.1,')
        setTimeout(() => res.destroy(), 20)
        return
      }
      if (req.url !== '/api/chat') {
        res.writeHead(404).end()
        return
      }
      res.writeHead(200, { 'content-type': 'application/x-ndjson' })
      const timer = setInterval(() => res.write('{"message":{"content":"x"},"done":false}\n'), 10)
      res.on('close', () => {
        clearInterval(timer)
        closes.push({ path: req.url ?? '', at: performance.now() })
      })
    })
    h = await startGateway({ fake: false, upstream: mock.url, gateway: { headersTimeoutMs: 300 } })
    ;({ key } = await h.device('laptop'))
  })
  afterAll(async () => {
    await h.close()
    await mock.close()
  })

  it('a client that goes away aborts the upstream request within 100 ms', async () => {
    for (let i = 0; i < 5; i++) {
      closes.length = 0
      const abortedAt = await new Promise<number>((resolve) => {
        const req = request(`${h.url}/ollama/api/chat`, {
          method: 'POST',
          headers: { Authorization: `Bearer ${key}` },
        })
        req.on('response', (res) => {
          res.once('data', () => {
            const at = performance.now()
            req.destroy()
            resolve(at)
          })
        })
        req.on('error', () => {})
        req.end(JSON.stringify(CHAT({ stream: true })))
      })
      await expect.poll(() => closes.length, { interval: 5 }).toBe(1)
      expect(closes[0]!.at - abortedAt).toBeLessThan(100)
    }
    await expect
      .poll(async () => (await h.hub.policy.usageReport()).recent.some((u) => u.status === 499))
      .toBe(true)
  })

  it('Ollama that never answers: 504 after the headers deadline, and the upstream socket is closed', async () => {
    const res = await post(`${h.url}/ollama/api/generate`, key, { model: 'qwen3:1.7b', prompt: 'x' })
    expect(res.status).toBe(504)
    expect(res.json().error).toMatch(/did not start answering POST \/api\/generate within 300 ms/)
  })

  it('Ollama dying mid-answer cuts the client’s response instead of ending it cleanly', async () => {
    const res = await fetch(`${h.url}/ollama/api/embed`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${key}` },
      body: JSON.stringify({ model: 'qwen3:1.7b', input: 'x' }),
    })
    expect(res.status).toBe(200)
    await expect(res.text()).rejects.toThrow()
  })

  it('Ollama not running: 503 with a clear message on every route', async () => {
    const port = await freeLoopbackPort()
    await h.hub.settings.set('ollama_host', `http://127.0.0.1:${port}`)
    try {
      const chat = await post(`${h.url}/ollama/api/chat`, key, CHAT({ stream: false }))
      expect(chat.status).toBe(503)
      expect(chat.json()).toMatchObject({ code: 'UPSTREAM_UNAVAILABLE' })
      // Refused while reading the model list (to resolve the name) or while forwarding (a list still cached).
      const down = new RegExp(
        `Ollama (is not running at http://127.0.0.1:${port}|at http://127.0.0.1:${port} is not reachable) \\(connection refused`,
      )
      expect(chat.json().error).toMatch(down)
      const oa = await post(`${h.url}/v1/chat/completions`, key, CHAT({ stream: true }))
      expect(oa.status).toBe(503)
      expect(oa.json().error.message).toMatch(down)
      for (const path of ['/ollama/api/tags', '/v1/models', '/ollama/api/version', '/ollama/api/ps']) {
        const res = await get(`${h.url}${path}`, key)
        expect(res.status, path).toBe(503)
      }
    } finally {
      await h.hub.settings.set('ollama_host', mock.url)
    }
  })
})

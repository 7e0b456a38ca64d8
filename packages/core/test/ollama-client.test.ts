import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { isSharedLLMError, type SharedLLMError } from '../src/errors'
import { OllamaClient, readNdjson } from '../src/ollama/index'
import { httpError } from '../src/ollama/errors'
import { type FakeOllama, fakeOllamaDir, freeLoopbackPort, startFakeOllama } from '../src/testing/fake-ollama'

const fixture = (name: string) => readFileSync(join(fakeOllamaDir, 'fixtures', name), 'utf8')

async function caught(p: Promise<unknown> | (() => unknown)): Promise<SharedLLMError> {
  try {
    await (typeof p === 'function' ? p() : p)
  } catch (err) {
    if (isSharedLLMError(err)) return err
    throw err
  }
  throw new Error('expected a SharedLLMError')
}

let fake: FakeOllama
let client: OllamaClient

beforeAll(async () => {
  fake = await startFakeOllama()
  client = new OllamaClient({ host: fake.url, timeoutMs: 5000 })
})
afterAll(() => fake?.stop())

describe('OllamaClient against the fake ollama process', () => {
  test('version', async () => {
    expect(await client.version()).toBe('0.10.1')
  })

  test('tags: the 16 captured models with sizes and details', async () => {
    const models = await client.tags()
    expect(models).toHaveLength(16)
    expect(models[0]).toEqual({
      name: 'gemma3n:e4b',
      model: 'gemma3n:e4b',
      size: 7547589116,
      digest: '15cb39fd9394fd2549f6df9081cfc84dd134ecf2c9c5be911e5629920489ac32',
      modified_at: '2025-07-11T18:44:02.665974994+02:00',
      details: expect.objectContaining({
        family: 'gemma3n',
        parameter_size: '6.9B',
        quantization_level: 'Q4_K_M',
      }),
    })
  })

  test('ps: empty, then a model loaded by chat with size, size_vram, expires_at and context_length', async () => {
    expect(await client.ps()).toEqual([])
    const res = await client.request('/api/chat', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        model: 'qwen3:1.7b',
        stream: false,
        messages: [{ role: 'user', content: 'hi' }],
        options: { num_ctx: 8192 },
      }),
    })
    expect(res.status).toBe(200)
    await res.arrayBuffer()
    const [m, ...rest] = await client.ps()
    expect(rest).toEqual([])
    // Ollama reports weights + KV cache + graph (llm/llama_server.go MemorySize), more than the file's 1359293444
    expect(m).toMatchObject({ name: 'qwen3:1.7b', context_length: 8192 })
    expect(m!.size).toBeGreaterThan(1359293444)
    expect(m!.size_vram).toBe(m!.size)
    expect(Date.parse(m!.expires_at!)).toBeGreaterThan(Date.now())
    await client.unload('qwen3:1.7b')
    expect(await client.ps()).toEqual([])
  })

  test('show: typed model_info, details and capabilities', async () => {
    const show = await client.show('dolphin3:8b')
    expect(show.model_info['llama.block_count']).toBe(32)
    expect(show.model_info['llama.attention.head_count_kv']).toBe(8)
    expect(show.details.family).toBe('llama')
    expect(show.capabilities).toEqual(['completion'])
  })

  test('show of an unknown model is MODEL_NOT_FOUND with Ollama’s message', async () => {
    const err = await caught(client.show('nope:1b'))
    expect(err.code).toBe('MODEL_NOT_FOUND')
    expect(err.status).toBe(404)
    expect(err.message).toContain("model 'nope:1b' not found")
  })

  test('a bad name is refused before any request is sent', async () => {
    await fake.clearRequests()
    expect((await caught(() => client.show('../../etc'))).code).toBe('VALIDATION')
    expect((await caught(() => client.pull('a b'))).code).toBe('VALIDATION')
    expect((await caught(() => client.delete('/x'))).code).toBe('VALIDATION')
    expect(await fake.requests()).toEqual([])
  })

  test('pull streams the raw lines, including lines without completed', async () => {
    const lines = []
    for await (const line of client.pull('tinyllama')) lines.push(line)
    expect(lines[0]).toEqual({ status: 'pulling manifest' })
    expect(lines[1]).toEqual({
      status: 'pulling 26bd607a51eb',
      digest: 'sha256:26bd607a51eb1f3a0d3beac444b977e03fa745def499add60c996c08c8c2ddcd',
      total: 408734816,
    })
    expect(lines.at(-1)).toEqual({ status: 'success' })
    expect((await client.tags()).map((m) => m.name)).toContain('tinyllama:latest')
  })

  test('an {"error"} line inside the 200 pull stream is PULL_FAILED with Ollama’s message', async () => {
    const seen: unknown[] = []
    const err = await caught(async () => {
      for await (const line of client.pull('error-model')) seen.push(line)
    })
    expect(seen).toEqual([{ status: 'pulling manifest' }])
    expect(err.code).toBe('PULL_FAILED')
    expect(err.details?.upstream).toBe('pull model manifest: file does not exist')
  })

  test('delete removes a model; deleting it again is MODEL_NOT_FOUND', async () => {
    await client.delete('tinyllama')
    expect((await client.tags()).map((m) => m.name)).not.toContain('tinyllama:latest')
    expect((await caught(client.delete('tinyllama'))).code).toBe('MODEL_NOT_FOUND')
  })

  test('request passes the upstream response through unbuffered, whatever its status', async () => {
    const res = await client.request('/api/generate', {
      method: 'POST',
      body: JSON.stringify({ model: 'qwen3:1.7b', prompt: 'one two three' }),
    })
    expect(res.headers.get('content-type')).toBe('application/x-ndjson')
    const chunks = []
    for await (const c of readNdjson(res.body!)) chunks.push(c as { response: string; done: boolean })
    expect(chunks.map((c) => c.response).join('')).toBe('Echo: one two three')
    expect(chunks.at(-1)).toMatchObject({ done: true, prompt_eval_count: 3, eval_count: 4 })

    const missing = await client.request('/api/nothing', { method: 'GET' })
    expect(missing.status).toBe(404)
    expect(await missing.text()).toBe(fixture('api-unknown-path-404-plaintext.txt'))
  })

  test('request refuses a path that would leave the host', async () => {
    expect((await caught(client.request('//evil.example/x', { method: 'GET' }))).code).toBe('VALIDATION')
    expect((await caught(client.request('api/tags', { method: 'GET' }))).code).toBe('VALIDATION')
  })

  test('a hung Ollama is a TIMEOUT, not a hang', async () => {
    await fake.setMode('hang')
    try {
      const started = Date.now()
      const err = await caught(client.version({ timeoutMs: 200 }))
      expect(err.code).toBe('TIMEOUT')
      expect(Date.now() - started).toBeLessThan(2000)
    } finally {
      await fake.setMode('normal')
    }
  })

  test('an aborted call is CANCELLED', async () => {
    await fake.setMode('slow:2000')
    try {
      const ac = new AbortController()
      setTimeout(() => ac.abort(), 50)
      expect((await caught(client.tags({ signal: ac.signal }))).code).toBe('CANCELLED')
      const ac2 = new AbortController()
      setTimeout(() => ac2.abort(), 50)
      expect((await caught(client.request('/api/tags', { method: 'GET', signal: ac2.signal }))).code).toBe(
        'CANCELLED',
      )
    } finally {
      await fake.setMode('normal')
    }
  })
})

describe('OllamaClient errors', () => {
  test('connection refused is UPSTREAM_UNAVAILABLE saying so, for JSON calls and the passthrough', async () => {
    const port = await freeLoopbackPort()
    const down = new OllamaClient({ host: `http://127.0.0.1:${port}` })
    const err = await caught(down.version())
    expect(err.code).toBe('UPSTREAM_UNAVAILABLE')
    expect(err.status).toBe(503)
    expect(err.message).toMatch(/connection refused/)
    expect((await caught(down.request('/api/chat', { method: 'POST', body: '{}' }))).code).toBe(
      'UPSTREAM_UNAVAILABLE',
    )
    const pullErr = await caught(async () => {
      for await (const _ of down.pull('llama3')) {
        // nothing arrives
      }
    })
    expect(pullErr.code).toBe('UPSTREAM_UNAVAILABLE')
  })

  test('the host function is read on every call', async () => {
    let host = 'http://127.0.0.1:1'
    const c = new OllamaClient({ host: () => host })
    expect((await caught(c.version())).code).toBe('UPSTREAM_UNAVAILABLE')
    host = `${fake.url}/`
    expect(await c.version()).toBe('0.10.1')
  })

  const where = { host: 'http://127.0.0.1:11434', method: 'POST', path: '/api/generate' }

  test('the captured 400 body is BAD_REQUEST with Ollama’s message', () => {
    const body = fixture('error-400-invalid-json-with-headers.txt').split('\n\n')[1]!
    const err = httpError(400, body, where)
    expect(err.code).toBe('BAD_REQUEST')
    expect(err.message).toContain("invalid character 'm' looking for beginning of object key string")
  })

  test('the captured current-format 404 is MODEL_NOT_FOUND', () => {
    const err = httpError(404, fixture('error-model-not-found-404-current-format.json'), where)
    expect(err.code).toBe('MODEL_NOT_FOUND')
    expect(err.message).toContain("model 'custom-phi3-32k-Q4_K_M' not found")
  })

  test('the plain-text 404 for unknown paths says the path is not served', () => {
    const err = httpError(404, fixture('api-unknown-path-404-plaintext.txt'), {
      ...where,
      method: 'GET',
      path: '/api/x',
    })
    expect(err.code).toBe('UPSTREAM_ERROR')
    expect(err.message).toMatch(/does not serve GET \/api\/x \(404 page not found\)/)
  })

  test('other statuses are UPSTREAM_ERROR with the status and message', () => {
    const err = httpError(401, '{"error": "unauthorized"}', { ...where, method: 'GET', path: '/api/ps' })
    expect(err.code).toBe('UPSTREAM_ERROR')
    expect(err.message).toBe('Ollama answered GET /api/ps with 401: unauthorized')
  })

  test('a non-JSON 200 body or an unexpected shape is UPSTREAM_ERROR', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sllm-fixtures-'))
    cpSync(join(fakeOllamaDir, 'fixtures'), dir, { recursive: true })
    writeFileSync(join(dir, 'api-version-local-0.10.1.json'), 'Ollama is running')
    writeFileSync(join(dir, 'api-tags-16-models-local.json'), '{"models":[{"name":"x","size":-1}]}')
    const broken = await startFakeOllama({ env: { FAKE_OLLAMA_FIXTURES: dir } })
    try {
      const c = new OllamaClient({ host: broken.url })
      const notJson = await caught(c.version())
      expect(notJson.code).toBe('UPSTREAM_ERROR')
      expect(notJson.message).toMatch(/non-JSON/)
      const shape = await caught(c.tags())
      expect(shape.code).toBe('UPSTREAM_ERROR')
      expect(shape.message).toMatch(/unexpected shape at models\.0\.size/)
    } finally {
      await broken.stop()
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

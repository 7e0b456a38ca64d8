import { spawn, spawnSync } from 'node:child_process'
import { readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { readNdjson } from '../src/ollama/index'
import {
  type FakeOllama,
  fakeOllamaBin,
  fakeOllamaDir,
  freeLoopbackPort,
  startFakeOllama,
} from '../src/testing/fake-ollama'

const fixture = (name: string) => readFileSync(join(fakeOllamaDir, 'fixtures', name), 'utf8')
const keys = (o: object) => Object.keys(o).sort()

let fake: FakeOllama
beforeAll(async () => {
  fake = await startFakeOllama()
})
afterAll(() => fake?.stop())

const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
  fetch(fake.url + path, {
    method: 'POST',
    body: JSON.stringify(body),
    headers: { 'content-type': 'application/json', ...headers },
  })

async function ndjson(res: Response): Promise<Record<string, unknown>[]> {
  const out: Record<string, unknown>[] = []
  for await (const o of readNdjson(res.body!)) out.push(o as Record<string, unknown>)
  return out
}

function sse(text: string): unknown[] {
  return text
    .split('\n\n')
    .filter((b) => b.startsWith('data: '))
    .map((b) => b.slice(6))
    .map((d) => (d === '[DONE]' ? d : JSON.parse(d)))
}

describe('the fake ollama executable', () => {
  test('is an executable `ollama` that answers --version and refuses unknown commands', () => {
    expect(statSync(fakeOllamaBin).mode & 0o111).not.toBe(0)
    const v = spawnSync(fakeOllamaBin, ['--version'], { encoding: 'utf8' })
    expect(v.status).toBe(0)
    expect(v.stdout).toBe('ollama version is 0.10.1\n')
    const bad = spawnSync(fakeOllamaBin, ['run', 'llama3'], { encoding: 'utf8' })
    expect(bad.status).toBe(1)
    expect(bad.stderr).toMatch(/only `ollama serve`/)
  })

  test('accepts OLLAMA_HOST as http://host:port and binds only that host', async () => {
    const port = await freeLoopbackPort()
    const other = await startFakeOllama({ host: `http://127.0.0.1:${port}` })
    try {
      expect(other.url).toBe(`http://127.0.0.1:${port}`)
      expect(await (await fetch(`${other.url}/api/version`)).text()).toBe(
        fixture('api-version-local-0.10.1.json'),
      )
      // Bound to 127.0.0.1 only: another loopback address does not answer.
      await expect(fetch(`http://127.0.0.2:${port}/api/version`)).rejects.toThrow()
    } finally {
      await other.stop()
    }
  })

  test('GET /api/version replays the captured bytes; unknown paths get the plain-text 404', async () => {
    const v = await fetch(`${fake.url}/api/version`)
    expect(v.headers.get('content-type')).toBe('application/json; charset=utf-8')
    expect(await v.text()).toBe('{"version":"0.10.1"}')
    const nf = await fetch(`${fake.url}/api/does-not-exist`)
    expect(nf.status).toBe(404)
    expect(nf.headers.get('content-type')).toBe('text/plain')
    expect(await nf.text()).toBe('404 page not found')
    expect(await (await fetch(`${fake.url}/`)).text()).toBe('Ollama is running')
  })

  test('/api/show serves the captured model_info for any known model, the current-format 404 otherwise', async () => {
    const show = (await (await post('/api/show', { model: 'qwen3:8b' })).json()) as Record<string, unknown>
    const captured = JSON.parse(fixture('api-show-dolphin3-8b-local-windows.json'))
    expect(show.model_info).toEqual(captured.model_info)
    expect(show.details).toMatchObject({ family: 'qwen3' })
    const nf = await post('/api/show', { model: 'custom-phi3-32k-Q4_K_M' })
    expect(nf.status).toBe(404)
    expect(await nf.text()).toBe(fixture('error-model-not-found-404-current-format.json').trim())
  })

  test('/api/chat streams NDJSON chunks shaped like the docs, ending with the counts', async () => {
    const chunks = await ndjson(
      await post('/api/chat', { model: 'qwen3:8b', messages: [{ role: 'user', content: 'hello there' }] }),
    )
    const docChunk = JSON.parse(fixture('docs-api-chat-stream-chunk.json'))
    const docFinal = JSON.parse(fixture('docs-api-chat-stream-final.json'))
    expect(chunks.slice(0, -1).map((c) => (c.message as { content: string }).content)).toEqual([
      'Echo:',
      ' hello',
      ' there',
    ])
    expect(keys(chunks[0]!)).toEqual(keys(docChunk))
    const final = chunks.at(-1)!
    expect(keys(final)).toEqual(keys({ ...docFinal, done_reason: 'stop' }))
    expect(final).toMatchObject({ done: true, prompt_eval_count: 2, eval_count: 3 })
  })

  test('/api/chat stream:false and /api/generate with an error mid-stream', async () => {
    const one = (await (
      await post('/api/chat', {
        model: 'qwen3:8b',
        stream: false,
        messages: [{ role: 'user', content: 'a b' }],
      })
    ).json()) as Record<string, unknown>
    expect(one).toMatchObject({
      done: true,
      message: { role: 'assistant', content: 'Echo: a b' },
      eval_count: 3,
    })
    const gen = await ndjson(
      await post('/api/generate', { model: 'qwen3:8b', prompt: 'please __fake_error__ now' }),
    )
    expect(gen).toHaveLength(3)
    expect(gen.at(-1)).toEqual({ error: 'an error was encountered while running the model' })
  })

  test('FAKE_OLLAMA_CHUNKS and FAKE_OLLAMA_CHUNK_DELAY_MS shape the stream', async () => {
    const f = await startFakeOllama({ chunks: 5, chunkDelayMs: 30 })
    try {
      const started = Date.now()
      const res = await fetch(`${f.url}/api/generate`, {
        method: 'POST',
        body: JSON.stringify({ model: 'qwen3:8b', prompt: 'x y' }),
      })
      const lines = await ndjson(res)
      expect(lines.map((l) => l.response)).toEqual(['Echo:', ' x', ' y', ' Echo:', ' x', ''])
      expect(Date.now() - started).toBeGreaterThanOrEqual(5 * 30 - 5)
    } finally {
      await f.stop()
    }
  })

  test('/v1/chat/completions streams SSE like the capture, with a usage chunk when asked', async () => {
    const res = await post('/v1/chat/completions', {
      model: 'qwen3:8b',
      stream: true,
      stream_options: { include_usage: true },
      messages: [{ role: 'user', content: 'hi' }],
    })
    expect(res.headers.get('content-type')).toBe('text/event-stream')
    const events = sse(await res.text()) as Array<Record<string, unknown>>
    const captured = sse(fixture('openai-v1-chat-completions-sse-content-stream.txt')) as Array<
      Record<string, unknown>
    >
    expect(keys(events[0]!)).toEqual(keys(captured[0]!))
    expect(events.at(-1)).toBe('[DONE]')
    const usage = events.at(-2)!
    expect(usage).toMatchObject({
      choices: [],
      usage: { prompt_tokens: 1, completion_tokens: 2, total_tokens: 3 },
    })
    expect(events.at(-3)).toMatchObject({ choices: [{ finish_reason: 'stop' }] })
    const noUsage = sse(
      await (await post('/v1/chat/completions', { model: 'qwen3:8b', stream: true, messages: [] })).text(),
    )
    expect(noUsage.some((e) => typeof e === 'object' && e !== null && 'usage' in e)).toBe(false)
  })

  test('/v1/chat/completions and /v1/completions without stream answer JSON with usage', async () => {
    const chat = (await (
      await post('/v1/chat/completions', { model: 'qwen3:8b', messages: [{ role: 'user', content: 'yo' }] })
    ).json()) as Record<string, unknown>
    expect(chat).toMatchObject({
      object: 'chat.completion',
      choices: [{ index: 0, message: { role: 'assistant', content: 'Echo: yo' }, finish_reason: 'stop' }],
      usage: { prompt_tokens: 1, completion_tokens: 2, total_tokens: 3 },
    })
    const comp = (await (await post('/v1/completions', { model: 'qwen3:8b', prompt: 'a' })).json()) as Record<
      string,
      unknown
    >
    expect(comp).toMatchObject({ object: 'text_completion', choices: [{ text: 'Echo: a' }] })
    const missing = await post('/v1/chat/completions', { model: 'nope', messages: [] })
    expect(missing.status).toBe(404)
    expect(await missing.json()).toMatchObject({ error: { message: expect.stringContaining('nope') } })
  })

  test('embeddings: /api/embed, /api/embeddings, /v1/embeddings; /v1/models lists the models', async () => {
    const embed = (await (await post('/api/embed', { model: 'qwen3:8b', input: ['a', 'b'] })).json()) as {
      embeddings: number[][]
    }
    expect(embed.embeddings).toHaveLength(2)
    expect(embed.embeddings[0]).toHaveLength(8)
    const legacy = (await (await post('/api/embeddings', { model: 'qwen3:8b', prompt: 'a' })).json()) as {
      embedding: number[]
    }
    expect(legacy.embedding).toEqual(embed.embeddings[0])
    const v1 = (await (await post('/v1/embeddings', { model: 'qwen3:8b', input: 'a' })).json()) as Record<
      string,
      unknown
    >
    expect(v1).toMatchObject({
      object: 'list',
      data: [{ object: 'embedding', index: 0, embedding: embed.embeddings[0] }],
    })
    const models = (await (await fetch(`${fake.url}/v1/models`)).json()) as { data: { id: string }[] }
    expect(models.data).toHaveLength(16)
  })

  test('/api/pull honours stream:false; invalid JSON is a 400 like Ollama’s', async () => {
    const ok = await post('/api/pull', { model: 'newone', stream: false })
    expect(await ok.json()).toEqual({ status: 'success' })
    const bad = await post('/api/pull', { model: 'error-x', stream: false })
    expect(bad.status).toBe(500)
    expect(await bad.json()).toEqual({ error: 'pull model manifest: file does not exist' })
    const invalid = await fetch(`${fake.url}/api/generate`, { method: 'POST', body: '{model: 1}' })
    expect(invalid.status).toBe(400)
    expect(await invalid.json()).toEqual({
      error: "invalid character 'm' looking for beginning of object key string",
    })
  })

  test('records requests with method, path, headers and parsed body', async () => {
    await fake.clearRequests()
    await post('/api/chat?x=1', { model: 'qwen3:8b', stream: false, messages: [] }, { 'x-test': 'yes' })
    const [r] = await fake.requests()
    expect(r).toMatchObject({
      method: 'POST',
      path: '/api/chat',
      query: '?x=1',
      body: { model: 'qwen3:8b', stream: false, messages: [] },
    })
    expect(r!.headers['x-test']).toBe('yes')
  })

  test('slow mode delays answers; mode changes at runtime', async () => {
    await fake.setMode('slow:300')
    try {
      const started = Date.now()
      await (await fetch(`${fake.url}/api/version`)).text()
      expect(Date.now() - started).toBeGreaterThanOrEqual(290)
    } finally {
      await fake.setMode('normal')
    }
    await expect(fake.setMode('weird')).rejects.toThrow(/unknown mode/)
  })

  test('crash-after:<ms> makes the process die', async () => {
    const port = await freeLoopbackPort()
    const child = spawn(fakeOllamaBin, ['serve'], {
      env: { ...process.env, OLLAMA_HOST: `127.0.0.1:${port}`, FAKE_OLLAMA_MODE: 'crash-after:100' },
      stdio: 'ignore',
    })
    const code = await new Promise((r) => child.on('exit', r))
    expect(code).toBe(2)
  })
})

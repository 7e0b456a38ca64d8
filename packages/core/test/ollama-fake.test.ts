import { spawn, spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, test, vi } from 'vitest'
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

  test('/api/show sends each model its own captured model_info; the 404 names the canonical name', async () => {
    const show = (await (await post('/api/show', { model: 'qwen3:8b' })).json()) as Record<string, unknown>
    const captured = JSON.parse(
      readFileSync(join(fakeOllamaDir, 'fixtures/models/caps/qwen3_8b.json'), 'utf8'),
    )
    expect(show.model_info).toEqual(captured.model_info)
    expect(show.details).toMatchObject({ family: 'qwen3' })
    const dolphin = (await (await post('/api/show', { model: 'dolphin3:8b' })).json()) as {
      model_info: object
    }
    expect(dolphin.model_info).toEqual(
      JSON.parse(fixture('api-show-dolphin3-8b-local-windows.json')).model_info,
    )
    // server/routes.go ShowHandler canonicalises the name (DisplayShortest) before it looks the model up
    const nf = await post('/api/show', { model: 'custom-phi3-32k-Q4_K_M' })
    expect(nf.status).toBe(404)
    expect(await nf.json()).toEqual({ error: "model 'custom-phi3-32k-Q4_K_M:latest' not found" })
  })

  test('model metadata: sliding window, projector, per-layer arrays (null unless verbose)', async () => {
    const gemma = (await (await post('/api/show', { model: 'gemma3:4b' })).json()) as {
      model_info: Record<string, unknown>
      capabilities: string[]
    }
    expect(gemma.model_info['gemma3.attention.sliding_window']).toBe(1024)
    expect(gemma.capabilities).toEqual(['completion', 'vision'])
    const minicpm = (await (await post('/api/show', { model: 'minicpm-v:8b' })).json()) as Record<
      string,
      unknown
    >
    expect(minicpm.projector_info).toMatchObject({ 'general.architecture': 'clip' })
    const quiet = (await (await post('/api/show', { model: 'gemma3n:e4b' })).json()) as {
      model_info: Record<string, unknown>
    }
    expect(quiet.model_info['gemma3n.attention.sliding_window_pattern']).toBeNull()
    const verbose = (await (await post('/api/show', { model: 'gemma3n:e4b', verbose: true })).json()) as {
      model_info: Record<string, unknown[]>
    }
    const pattern = verbose.model_info['gemma3n.attention.sliding_window_pattern']!
    expect(pattern).toHaveLength(35)
    expect(pattern.filter((x) => x === false)).toHaveLength(7)
    expect(verbose.model_info['tokenizer.ggml.tokens']).toHaveLength(262400)
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
    // openai.FinishChunk: an empty delta; `role` only in the first chunk (middleware/openai.go)
    expect(events.at(-3)).toMatchObject({ choices: [{ delta: {}, finish_reason: 'stop' }] })
    const deltas = events
      .slice(0, -3)
      .map((e) => (e as { choices: [{ delta: Record<string, unknown> }] }).choices[0].delta)
    expect(deltas[0]).toEqual({ role: 'assistant', content: 'Echo:' })
    expect(deltas.slice(1)).toEqual([{ content: ' hi' }])
    const noUsage = sse(
      await (
        await post('/v1/chat/completions', {
          model: 'qwen3:8b',
          stream: true,
          messages: [{ role: 'user', content: 'x' }],
        })
      ).text(),
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
    const missing = await post('/v1/chat/completions', {
      model: 'nope',
      messages: [{ role: 'user', content: 'x' }],
    })
    expect(missing.status).toBe(404)
    expect(await missing.json()).toEqual({
      error: { message: "model 'nope' not found", type: 'not_found_error', param: null, code: null },
    })
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
    // gin `/v1/models/:model` is one path segment; a second one (or an encoded slash) is no route at all
    for (const path of ['/v1/models/library/qwen3:8b', '/v1/models/library%2Fqwen3:8b']) {
      const deeper = await fetch(`${fake.url}${path}`)
      expect(deeper.status, path).toBe(404)
      expect(await deeper.text()).toBe('404 page not found')
    }
  })

  test('/v1 reasoning_effort follows openai.go thinkFromReasoningEffort: clamped tiers, an unknown one is a 400', async () => {
    const bad = await post('/v1/chat/completions', {
      model: 'qwen3:8b',
      reasoning_effort: 'bogus',
      messages: [{ role: 'user', content: 'x' }],
    })
    expect(bad.status).toBe(400)
    expect(((await bad.json()) as { error: { message: string } }).error.message).toBe(
      'invalid reasoning value: "bogus" (must be "minimal", "low", "medium", "high", "xhigh", "ultra", "max", or "none")',
    )
    // `reasoning.effort` wins over `reasoning_effort`; "xhigh" is clamped to "max"
    const ok = await post('/v1/chat/completions', {
      model: 'qwen3:8b',
      reasoning: { effort: 'xhigh' },
      reasoning_effort: 'bogus',
      messages: [{ role: 'user', content: 'x' }],
    })
    expect(ok.status).toBe(200)
    await ok.arrayBuffer()
  })

  test('/api/create (server/create.go): no name is a 400 "invalid model name"; `name` is the fallback', async () => {
    const none = await post('/api/create', { from: 'qwen3:8b', stream: false })
    expect(none.status).toBe(400)
    expect(await none.json()).toEqual({ error: 'invalid model name' })
    const byName = await post('/api/create', { name: 'by-name-test', from: 'qwen3:8b', stream: false })
    expect(await byName.json()).toEqual({ status: 'success' })
    const shown = await post('/api/show', { model: 'by-name-test' })
    expect(shown.status).toBe(200)
    await shown.arrayBuffer()
    const del = await fetch(`${fake.url}/api/delete`, {
      method: 'DELETE',
      body: JSON.stringify({ model: 'by-name-test' }),
    })
    expect(del.status).toBe(200)
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
    await (
      await post('/api/chat?x=1', { model: 'qwen3:8b', stream: false, messages: [] }, { 'x-test': 'yes' })
    ).text()
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

// The stand-in's own modules, for the rules that have exact numbers.
const asset = (name: string) => join(fakeOllamaDir, name)
const gojson = await import(asset('gojson.mjs'))
const memory = await import(asset('memory.mjs'))
const names = await import(asset('names.mjs'))
const server = await import(asset('server.mjs'))
const catalog = JSON.parse(readFileSync(asset('fixtures/models/catalog.json'), 'utf8')) as Array<{
  name: string
}>
const entry = (name: string) => catalog.find((e) => e.name === name)!

/** Running, and not a zombie nobody has reaped yet (a container's init may never reap an orphan). */
function alive(pid: number) {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'))
  } catch {
    return false
  }
}

async function psOf(f: FakeOllama, name: string) {
  const { models } = (await (await fetch(`${f.url}/api/ps`)).json()) as {
    models: Array<Record<string, unknown>>
  }
  return models.find((m) => m.name === name)
}

async function load(f: FakeOllama, model: string, options?: object) {
  const res = await fetch(`${f.url}/api/generate`, {
    method: 'POST',
    body: JSON.stringify({ model, options }),
  })
  expect(res.status).toBe(200)
  return res.json()
}

describe('the stand-in follows Ollama’s own rules', () => {
  test('Go decoding: time.ParseDuration, case folding with K (U+212A) and ſ (U+017F), OLLAMA_KEEP_ALIVE', () => {
    expect(gojson.parseGoDuration('1h30m')).toBe(5400e9)
    expect(gojson.parseGoDuration('1.5s')).toBe(1.5e9)
    expect(gojson.parseGoDuration('-1m')).toBe(-60e9)
    expect(() => gojson.parseGoDuration('300')).toThrow('time: missing unit in duration "300"')
    expect(() => gojson.parseGoDuration('1d')).toThrow('time: unknown unit "d" in duration "1d"')
    expect(() => gojson.parseGoDuration('')).toThrow('time: invalid duration ""')
    expect(gojson.foldName('\u212Aeep_alive')).toBe(gojson.foldName('keep_alive'))
    expect(gojson.foldName('\u017Ftream')).toBe('STREAM')
    expect(gojson.parseKeepAliveJson(300)).toBe(300_000)
    expect(gojson.parseKeepAliveJson(-5)).toBe(Number.POSITIVE_INFINITY)
    // envconfig.KeepAlive takes whole seconds where the API does not
    expect(gojson.keepAliveFromEnv('300')).toBe(300_000)
    expect(gojson.keepAliveFromEnv('"10m"')).toBe(600_000)
    expect(gojson.keepAliveFromEnv('junk')).toBe(300_000)
    const decoded = gojson.decodeStruct(
      JSON.parse('{"model":"a","MODEL":"b","\u017Ftream":false,"Options":{"Num_Ctx":1}}'),
      gojson.ChatRequest,
    )
    expect(decoded).toEqual({ model: 'b', stream: false, options: { Num_Ctx: 1 } })
  })

  test('OLLAMA_HOST is read like envconfig.Host', () => {
    expect(server.parseHost('')).toEqual({ host: '127.0.0.1', port: 11434 })
    expect(server.parseHost('0.0.0.0')).toEqual({ host: '0.0.0.0', port: 11434 })
    expect(server.parseHost(':8080')).toEqual({ host: '0.0.0.0', port: 8080 })
    expect(server.parseHost('http://example.lan')).toEqual({ host: 'example.lan', port: 80 })
    expect(server.parseHost('https://[::1]:9000/path')).toEqual({ host: '::1', port: 9000 })
    expect(server.parseHost('"127.0.0.1:99999"')).toEqual({ host: '127.0.0.1', port: 11434 })
  })

  test('names: source suffixes, defaults, DisplayShortest, case-insensitive parts', () => {
    expect(names.parseRef('gpt-oss:20b:cloud')).toMatchObject({ base: 'gpt-oss:20b', source: 'cloud' })
    expect(names.parseRef('gpt-oss:20b-cloud')).toMatchObject({ base: 'gpt-oss:20b', source: 'cloud' })
    expect(names.parseRef('qwen3:8b:local')).toMatchObject({ base: 'qwen3:8b', source: 'local' })
    expect(() => names.parseRef('x:cloud:local')).toThrow(/not both/)
    expect(names.displayShortest(names.parseName('registry.ollama.ai/library/qwen3'))).toBe('qwen3:latest')
    expect(names.displayShortest(names.parseName('me/tool:1'))).toBe('me/tool:1')
    const r = names.resolveName('Library/QWEN3:8B', ['registry.ollama.ai/library/qwen3:8b'])
    expect(r.full).toBe('registry.ollama.ai/library/qwen3:8b')
    expect(() => names.resolveName('bad name', [])).toThrow('invalid model name')
  })

  test('the KV cache follows fs/ggml/ggml.go GraphSize: full layers, gemma3 sliding layers, q8_0, num_parallel', () => {
    const llama = memory.kvView(entry('llama3.2:3b'))
    // 28 layers × 8 KV heads × (128 + 128) × 2 bytes × 4096 = 448 MiB, what llama.cpp logs for llama3.2:3b
    expect(memory.graphSize(llama, 4096, 512, 1, 'f16').kvTotal).toBe(448 * 1024 * 1024)
    expect(memory.graphSize(llama, 4096, 512, 1, 'q8_0').kvTotal).toBe(224 * 1024 * 1024)
    expect(memory.graphSize(llama, 4096, 512, 2, 'f16').kvTotal).toBe(896 * 1024 * 1024)
    // gemma3:4b, 34 layers: 5 global layers at the full context, 29 at window × parallel + batch
    const gemma = memory.kvView(entry('gemma3:4b'))
    const perToken = (256 + 256) * 4 * 2
    expect(memory.graphSize(gemma, 8192, 512, 1, 'f16').kvTotal).toBe(
      5 * 8192 * perToken + 29 * (1024 + 512) * perToken,
    )
    // gpt-oss: even layers sliding (4096 per sequence + batch), odd layers the full context
    const oss = memory.kvView(entry('gpt-oss:20b'))
    expect(memory.graphSize(oss, 8192, 512, 1, 'f16').kvTotal).toBe(
      12 * (4096 + 512) * 1024 * 2 + 12 * 8192 * 1024 * 2,
    )
  })

  test('GraphSize: a hybrid with a per-layer head_count_kv caches only its attention layers, plus f32 recurrent state', () => {
    // granitehybrid-shaped (40 blocks, 4 with KV heads, mamba2 state in the others), as ggml.go reads it
    const headsKV = Array.from({ length: 40 }, (_, i) => ([9, 19, 29, 39].includes(i) ? 4 : 0))
    const hybrid = memory.kvView({
      vocab: 100352,
      show: {
        model_info: {
          'general.architecture': 'granitehybrid',
          'granitehybrid.block_count': 40,
          'granitehybrid.embedding_length': 1536,
          'granitehybrid.attention.head_count': 12,
          'granitehybrid.attention.head_count_kv': null,
          'granitehybrid.ssm.conv_kernel': 4,
          'granitehybrid.ssm.group_count': 1,
          'granitehybrid.ssm.inner_size': 3072,
          'granitehybrid.ssm.state_size': 128,
        },
      },
      verbose_arrays: { 'granitehybrid.attention.head_count_kv': headsKV },
    })
    const attention = 4 * 4 * (128 + 128) * 8192 * 2
    const recurrent = 36 * ((4 - 1) * (3072 + 2 * 128) + 128 * 3072) * 4
    const g = memory.graphSize(hybrid, 8192, 512, 1, 'q8_0')
    expect(g.kvTotal).toBe(attention / 2 + recurrent)
  })

  test('catalog hybrid granite4:tiny-h: head_count_kv null unless verbose, 4 attention blocks of 40 hold the KV', async () => {
    const f = await startFakeOllama({ extraModels: ['granite4:tiny-h'] })
    try {
      const showOf = async (verbose: boolean) =>
        (
          (await (
            await fetch(`${f.url}/api/show`, {
              method: 'POST',
              body: JSON.stringify({ model: 'granite4:tiny-h', verbose }),
            })
          ).json()) as { model_info: Record<string, unknown> }
        ).model_info
      expect((await showOf(false))['granitehybrid.attention.head_count_kv']).toBeNull()
      const perLayer = (await showOf(true))['granitehybrid.attention.head_count_kv'] as number[]
      expect(perLayer).toHaveLength(40)
      expect(perLayer.flatMap((h, i) => (h > 0 ? [i] : []))).toEqual([5, 15, 25, 35])
      const kv = memory.kvView(entry('granite4:tiny-h'))
      const recurrent = 36 * ((4 - 1) * (3072 + 2 * 128) + 128 * 3072) * 4
      const at = (ctx: number) => memory.graphSize(kv, ctx, 512, 1, 'f16').kvTotal
      expect(at(8192)).toBe(4 * 4 * (128 + 128) * 2 * 8192 + recurrent)
      // the recurrent state is the same at any context; only the four attention blocks grow
      expect(at(16384) - at(8192)).toBe(4 * 4 * 256 * 2 * 8192)
      await load(f, 'granite4:tiny-h', { num_ctx: 8192 })
      const e = memory.estimate(entry('granite4:tiny-h'), {
        numCtx: 8192,
        numParallel: 1,
        kvCacheType: 'f16',
      })
      expect((await psOf(f, 'granite4:tiny-h'))!.size).toBe(e.total)
    } finally {
      await f.stop()
    }
  })

  test('catalog MLA glm-4.7-flash: GraphSize caches key_length + value_length on one KV head, not the per-head _mla sizes', () => {
    const kv = memory.kvView(entry('glm-4.7-flash'))
    expect([kv.headK, kv.headV, kv.headsKVMax]).toEqual([576, 512, 1])
    const g = memory.graphSize(kv, 8192, 512, 1, 'f16')
    expect(g.kvTotal).toBe(47 * 8192 * (576 + 512) * 2)
    // what 20 heads × (256 + 256) per block would cost without MLA: about 9× more
    const info = (entry('glm-4.7-flash') as unknown as { show: { model_info: Record<string, number> } }).show
      .model_info
    const perHead =
      info['deepseek2.attention.key_length_mla']! + info['deepseek2.attention.value_length_mla']!
    expect(47 * 8192 * perHead * 20 * 2).toBeGreaterThan(8 * g.kvTotal)
  })

  test('catalog MLX qwen3-0.6b-mlx: context_length 0 while loading, weights only, num_ctx changes keep the runner', async () => {
    const f = await startFakeOllama({ extraModels: ['qwen3-0.6b-mlx'], loadMs: 400 })
    try {
      const name = 'qwen3-0.6b-mlx:latest'
      const tags = (await (await fetch(`${f.url}/api/tags`)).json()) as {
        models: Array<Record<string, unknown>>
      }
      const row = tags.models.find((m) => m.name === name)!
      // server/model_list_cache.go reads context/embedding length from a GGUF layer; this model has none
      expect(row.details).toEqual({
        parent_model: '',
        format: 'safetensors',
        family: '',
        families: null,
        parameter_size: '',
        quantization_level: '',
      })
      const shown = (await (
        await fetch(`${f.url}/api/show`, { method: 'POST', body: JSON.stringify({ model: name }) })
      ).json()) as { details: unknown; model_info: Record<string, unknown>; tensors?: unknown }
      expect(shown.details).toMatchObject({
        format: 'safetensors',
        family: 'qwen3',
        parameter_size: '596.05M',
      })
      expect(Object.values(shown.model_info).includes(null)).toBe(false)
      expect(shown.tensors).toBeUndefined()
      const pending = load(f, 'qwen3-0.6b-mlx', { num_ctx: 2048 })
      await vi.waitFor(async () => expect(await psOf(f, name)).toBeDefined())
      expect((await psOf(f, name))!.context_length).toBe(0)
      await pending
      const loaded = (await psOf(f, name))!
      expect(loaded.context_length).toBe(2048)
      expect(loaded.size).toBe(1192099840)
      const [first] = await f.runners()
      await load(f, 'qwen3-0.6b-mlx', { num_ctx: 8192 })
      const again = (await psOf(f, name))!
      expect([again.context_length, again.size]).toEqual([2048, 1192099840])
      expect((await f.runners())[0]!.pid).toBe(first!.pid)
      // above its max_position_embeddings the reported context is that maximum
      await fetch(`${f.url}/api/generate`, {
        method: 'POST',
        body: JSON.stringify({ model: 'qwen3-0.6b-mlx', keep_alive: 0 }),
      })
      await vi.waitFor(async () => expect(await psOf(f, name)).toBeUndefined())
      await load(f, 'qwen3-0.6b-mlx', { num_ctx: 100000 })
      expect((await psOf(f, name))!.context_length).toBe(40960)
    } finally {
      await f.stop()
    }
  })

  test('/api/ps size is the estimate, grows with num_ctx, and a different num_ctx reloads the runner', async () => {
    const f = await startFakeOllama()
    try {
      await load(f, 'qwen3:1.7b', { num_ctx: 2048 })
      const small = (await psOf(f, 'qwen3:1.7b'))!
      const [first] = await f.runners()
      const expected = memory.estimate(entry('qwen3:1.7b'), {
        numCtx: 2048,
        numParallel: 1,
        kvCacheType: 'f16',
      })
      expect(small.size).toBe(expected.total)
      await load(f, 'qwen3:1.7b', { num_ctx: 16384 })
      const big = (await psOf(f, 'qwen3:1.7b'))!
      expect(big.context_length).toBe(16384)
      expect(Number(big.size)).toBeGreaterThan(Number(small.size))
      const [second] = await f.runners()
      expect(second!.pid).not.toBe(first!.pid)
      await vi.waitFor(() => expect(alive(first!.pid)).toBe(false))
    } finally {
      await f.stop()
    }
  })

  test('while a model loads /api/ps shows it at its file size; loaded, at the estimate', async () => {
    const f = await startFakeOllama({ loadMs: 600 })
    try {
      const pending = load(f, 'qwen3:1.7b')
      await vi.waitFor(async () => expect(await psOf(f, 'qwen3:1.7b')).toBeDefined())
      expect((await psOf(f, 'qwen3:1.7b'))!.size).toBe(1359293444)
      await pending
      const e = memory.estimate(entry('qwen3:1.7b'), { numCtx: 4096, numParallel: 1, kvCacheType: 'f16' })
      expect((await psOf(f, 'qwen3:1.7b'))!.size).toBe(e.total)
    } finally {
      await f.stop()
    }
  })

  test('the default context follows the simulated VRAM (4096 / 32768 / 262144), capped at the trained 40960', async () => {
    for (const [vram, want] of [
      ['8GiB', 4096],
      ['24GiB', 32768],
      ['48GiB', 40960],
    ] as const) {
      const f = await startFakeOllama({ vram })
      try {
        await load(f, 'qwen3:8b')
        expect((await psOf(f, 'qwen3:8b'))!.context_length, vram).toBe(want)
      } finally {
        await f.stop()
      }
    }
  })

  test('a Modelfile num_ctx wins over OLLAMA_CONTEXT_LENGTH; a request num_ctx over both (routes.go modelOptions)', async () => {
    const f = await startFakeOllama({ ollamaEnv: { OLLAMA_CONTEXT_LENGTH: '8192' } })
    try {
      const created = await fetch(`${f.url}/api/create`, {
        method: 'POST',
        body: JSON.stringify({
          model: 'mine',
          from: 'qwen3:1.7b',
          parameters: { num_ctx: 3072 },
          stream: false,
        }),
      })
      expect(await created.json()).toEqual({ status: 'success' })
      await load(f, 'mine')
      expect((await psOf(f, 'mine:latest'))!.context_length).toBe(3072)
      await load(f, 'qwen3:1.7b')
      expect((await psOf(f, 'qwen3:1.7b'))!.context_length).toBe(8192)
      await load(f, 'mine', { num_ctx: 5000 })
      expect((await psOf(f, 'mine:latest'))!.context_length).toBe(5000)
    } finally {
      await f.stop()
    }
  })

  test('OLLAMA_NUM_PARALLEL multiplies the KV cache; embedding models still load with one sequence', async () => {
    const one = await startFakeOllama({ extraModels: ['all-minilm:l6-v2'] })
    const two = await startFakeOllama({
      extraModels: ['all-minilm:l6-v2'],
      ollamaEnv: { OLLAMA_NUM_PARALLEL: '2', OLLAMA_KV_CACHE_TYPE: 'q8_0' },
    })
    try {
      for (const f of [one, two])
        await load(f, 'llama3.2:1b'.replace('llama3.2:1b', 'qwen3:1.7b'), { num_ctx: 4096 })
      const a = Number((await psOf(one, 'qwen3:1.7b'))!.size)
      const b = Number((await psOf(two, 'qwen3:1.7b'))!.size)
      // twice the cells at half the bytes each: the same KV, so only the graph differs
      const e1 = memory.estimate(entry('qwen3:1.7b'), { numCtx: 4096, numParallel: 1, kvCacheType: 'f16' })
      const e2 = memory.estimate(entry('qwen3:1.7b'), { numCtx: 4096, numParallel: 2, kvCacheType: 'q8_0' })
      expect([a, b]).toEqual([e1.total, e2.total])
      expect(e2.kv).toBe(e1.kv)
      for (const f of [one, two]) {
        const r = await fetch(`${f.url}/api/embed`, {
          method: 'POST',
          body: JSON.stringify({ model: 'all-minilm:l6-v2', input: 'x' }),
        })
        expect(((await r.json()) as { embeddings: number[][] }).embeddings[0]).toHaveLength(384)
      }
      // bert's trained context is 512: the 4096 default is cut to it, and embedding models run one sequence
      const e = memory.estimate(entry('all-minilm:l6-v2'), {
        numCtx: 512,
        numParallel: 1,
        kvCacheType: 'q8_0',
      })
      expect((await psOf(two, 'all-minilm:l6-v2'))!.context_length).toBe(512)
      expect((await psOf(two, 'all-minilm:l6-v2'))!.size).toBe(e.total)
    } finally {
      await Promise.all([one.stop(), two.stop()])
    }
  })

  test('a runner answers OLLAMA_NUM_PARALLEL requests at once; the others wait for a slot', async () => {
    const answer = (f: FakeOllama) =>
      fetch(`${f.url}/api/chat`, {
        method: 'POST',
        body: JSON.stringify({
          model: 'qwen3:1.7b',
          stream: false,
          messages: [{ role: 'user', content: 'a b c d e' }],
        }),
      }).then(async (r) => {
        await r.arrayBuffer()
        return Date.now()
      })
    const took: number[] = []
    for (const parallel of ['1', '3']) {
      const f = await startFakeOllama({ tokensPerSecond: 60, ollamaEnv: { OLLAMA_NUM_PARALLEL: parallel } })
      try {
        await load(f, 'qwen3:1.7b')
        const t0 = Date.now()
        const ends = await Promise.all([answer(f), answer(f), answer(f)])
        took.push(Math.max(...ends) - t0)
      } finally {
        await f.stop()
      }
    }
    // 6 tokens at 60/s is 100 ms per answer: three in a row, or three at once
    expect(took[0]).toBeGreaterThanOrEqual(3 * 100 * 0.9)
    expect(took[1]).toBeGreaterThanOrEqual(100 * 0.9)
    expect(took[1]).toBeLessThan(took[0]! * 0.7)
  })

  test('HTTP is answered only after "GPU discovery"; the port listens before', async () => {
    const started = Date.now()
    const f = await startFakeOllama({ discoveryMs: 400 })
    try {
      const res = await fetch(`${f.url}/api/version`)
      expect(res.status).toBe(200)
      expect(Date.now() - started).toBeGreaterThanOrEqual(390)
      expect(f.output().indexOf('Listening on')).toBeLessThan(
        f.output().indexOf('vram-based default context'),
      )
    } finally {
      await f.stop()
    }
  })

  test('generation takes real time at tokens/s; stream:false sends its headers only at the end', async () => {
    const f = await startFakeOllama({ tokensPerSecond: 40 })
    try {
      await load(f, 'qwen3:1.7b')
      const t0 = Date.now()
      const res = await fetch(`${f.url}/api/chat`, {
        method: 'POST',
        body: JSON.stringify({
          model: 'qwen3:1.7b',
          stream: false,
          messages: [{ role: 'user', content: 'a b c d e' }],
        }),
      })
      const headersAfter = Date.now() - t0
      const body = (await res.json()) as { eval_count: number }
      expect(body.eval_count).toBe(6)
      expect(headersAfter).toBeGreaterThanOrEqual((6 / 40) * 1000 * 0.9)
    } finally {
      await f.stop()
    }
  })

  test('each loaded model runs in a runner process that outlives a SIGKILL of `ollama serve`', async () => {
    const f = await startFakeOllama()
    let runnerPid = 0
    try {
      await load(f, 'qwen3:1.7b')
      const [runner] = await f.runners()
      runnerPid = runner!.pid
      expect(alive(runnerPid)).toBe(true)
      process.kill(f.pid, 'SIGKILL')
      await vi.waitFor(() => expect(alive(f.pid)).toBe(false))
      // ollama/ollama#5642: the runner is still there, holding its memory
      const health = await fetch(`http://127.0.0.1:${runner!.port}/health`)
      expect(await health.json()).toMatchObject({ status: 'ok', pid: runnerPid })
    } finally {
      if (runnerPid && alive(runnerPid)) process.kill(runnerPid, 'SIGKILL')
      await vi.waitFor(() => expect(runnerPid === 0 || !alive(runnerPid)).toBe(true))
      await f.stop()
    }
  })

  test('an orphaned runner keeps holding memory on the shared simulated GPU (FAKE_OLLAMA_GPU_ID)', async () => {
    const gpu = { vram: '8GiB', gpuId: `t${process.pid}${Date.now()}` }
    const first = await startFakeOllama(gpu)
    let orphan = 0
    try {
      await load(first, 'qwen3:8b')
      orphan = (await first.runners())[0]!.pid
      process.kill(first.pid, 'SIGKILL')
      await vi.waitFor(() => expect(alive(first.pid)).toBe(false))
      const second = await startFakeOllama(gpu)
      try {
        await load(second, 'qwen3:8b')
        const row = (await psOf(second, 'qwen3:8b'))!
        // 8 GiB minus the orphan's share: the new runner is only partly on the GPU
        expect(Number(row.size_vram)).toBeLessThan(Number(row.size))
        expect(Number(row.size_vram)).toBe(8 * 1024 ** 3 - Number(row.size))
      } finally {
        await second.stop()
      }
    } finally {
      if (orphan && alive(orphan)) process.kill(orphan, 'SIGTERM')
      await vi.waitFor(() => expect(orphan === 0 || !alive(orphan)).toBe(true))
      await first.stop()
    }
  })

  test('OLLAMA_MAX_LOADED_MODELS: loading one more unloads the idle runner that expires first', async () => {
    const f = await startFakeOllama({ ollamaEnv: { OLLAMA_MAX_LOADED_MODELS: '1' } })
    try {
      await load(f, 'qwen3:1.7b')
      const [a] = await f.runners()
      await load(f, 'deepseek-r1:1.5b')
      const { models } = (await (await fetch(`${f.url}/api/ps`)).json()) as { models: { name: string }[] }
      expect(models.map((m) => m.name)).toEqual(['deepseek-r1:1.5b'])
      await vi.waitFor(() => expect(alive(a!.pid)).toBe(false))
    } finally {
      await f.stop()
    }
  })

  test('sched.go findRunnerToUnload: equal sessions go by model path (the digest), not by load order', async () => {
    const f = await startFakeOllama({ ollamaEnv: { OLLAMA_MAX_LOADED_MODELS: '2' } })
    try {
      const { models } = (await (await fetch(`${f.url}/api/tags`)).json()) as {
        models: { name: string; digest: string; capabilities: string[] }[]
      }
      const [low, high] = ['qwen3:1.7b', 'deepseek-r1:1.5b']
        .map((name) => models.find((m) => m.name === name)!)
        .sort((a, b) => (a.digest < b.digest ? -1 : 1))
      // the higher digest loads first, so it also expires first: ByDurationAndName still picks the lower
      await load(f, high!.name)
      await load(f, low!.name)
      await load(f, 'mistral:7b')
      const ps = (await (await fetch(`${f.url}/api/ps`)).json()) as { models: { name: string }[] }
      expect(ps.models.map((m) => m.name).sort()).toEqual([high!.name, 'mistral:7b'].sort())
    } finally {
      await f.stop()
    }
  })

  test('sched.go: with nothing idle a load waits for the chosen runner to finish, not loading over it', async () => {
    const f = await startFakeOllama({ tokensPerSecond: 20, ollamaEnv: { OLLAMA_MAX_LOADED_MODELS: '1' } })
    try {
      await load(f, 'qwen3:1.7b')
      const busy = fetch(`${f.url}/api/generate`, {
        method: 'POST',
        body: JSON.stringify({
          model: 'qwen3:1.7b',
          think: false,
          prompt: 'one two three four five six seven',
        }),
      })
      const first = await busy
      const reader = first.body!.getReader()
      await reader.read() // the answer is under way: the runner is in use
      let loadedAt = 0
      const next = load(f, 'deepseek-r1:1.5b').then(() => {
        loadedAt = Date.now()
      })
      let text = ''
      for (;;) {
        const { value, done } = await reader.read()
        if (done) break
        text += new TextDecoder().decode(value)
      }
      const finishedAt = Date.now()
      expect(text).toContain('"done":true')
      await next
      expect(loadedAt).toBeGreaterThanOrEqual(finishedAt)
      const ps = (await (await fetch(`${f.url}/api/ps`)).json()) as { models: { name: string }[] }
      expect(ps.models.map((m) => m.name)).toEqual(['deepseek-r1:1.5b'])
    } finally {
      await f.stop()
    }
  })

  test('a clean stop unloads every runner (SIGTERM → unloadAllRunners)', async () => {
    const f = await startFakeOllama()
    await load(f, 'qwen3:1.7b')
    const [runner] = await f.runners()
    await f.stop()
    await vi.waitFor(() => expect(alive(runner!.pid)).toBe(false))
  })

  test('failure switches: queue-full is Ollama’s 503, runner-crash ends the answer with an error', async () => {
    await fake.setMode('queue-full')
    try {
      const busy = await post('/api/chat', { model: 'qwen3:8b', messages: [{ role: 'user', content: 'x' }] })
      expect(busy.status).toBe(503)
      expect(await busy.json()).toEqual({
        error: 'server busy, please try again.  maximum pending requests exceeded',
      })
    } finally {
      await fake.setMode('normal')
    }
    await fake.setMode('runner-crash')
    try {
      const lines = await ndjson(
        await post('/api/chat', { model: 'qwen3:8b', messages: [{ role: 'user', content: 'a b c' }] }),
      )
      expect(lines.slice(0, -1).map((l) => (l.message as { content: string }).content)).toEqual([
        'Echo:',
        ' a',
      ])
      expect(lines.at(-1)).toEqual({
        error: 'an error was encountered while running the model: unexpected EOF',
      })
    } finally {
      await fake.setMode('normal')
    }
    // the crashed runner is replaced on the next request
    const ok = await post('/api/chat', {
      model: 'qwen3:8b',
      stream: false,
      messages: [{ role: 'user', content: 'x' }],
    })
    expect(ok.status).toBe(200)
    await ok.arrayBuffer()
  })

  test('OLLAMA_MODELS keeps pulls and deletes across restarts; OLLAMA_KEEP_ALIVE=0 unloads after each request', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fake-ollama-models-'))
    try {
      const a = await startFakeOllama({ ollamaEnv: { OLLAMA_MODELS: dir, OLLAMA_KEEP_ALIVE: '0' } })
      await (
        await fetch(`${a.url}/api/delete`, {
          method: 'DELETE',
          body: JSON.stringify({ model: 'mistral:7b' }),
        })
      ).arrayBuffer()
      await (
        await fetch(`${a.url}/api/pull`, {
          method: 'POST',
          body: JSON.stringify({ model: 'llama3.2:3b', stream: false }),
        })
      ).arrayBuffer()
      await load(a, 'llama3.2:3b')
      await vi.waitFor(async () => expect(await psOf(a, 'llama3.2:3b')).toBeUndefined())
      await a.stop()
      const b = await startFakeOllama({ ollamaEnv: { OLLAMA_MODELS: dir } })
      try {
        const { models } = (await (await fetch(`${b.url}/api/tags`)).json()) as { models: { name: string }[] }
        const listed = models.map((x) => x.name)
        expect(listed).toContain('llama3.2:3b')
        expect(listed).not.toContain('mistral:7b')
        expect(listed).toHaveLength(16)
      } finally {
        await b.stop()
      }
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

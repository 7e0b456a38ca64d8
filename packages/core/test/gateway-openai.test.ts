import type { IncomingMessage, ServerResponse } from 'node:http'
import OpenAI from 'openai'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import {
  ADMIN_SECRET,
  type GatewayHarness,
  type Json,
  type MockUpstream,
  post,
  startGateway,
  startJsonUpstream,
} from './gateway-harness'

/**
 * The OpenAI routes are translated to Ollama's native ones and back (gateway/openai.ts). An upstream that
 * speaks the native API as Ollama does (api/types.go ChatResponse, GenerateResponse, EmbedResponse) shows
 * what the official `openai` client then sees: what Ollama's own compatibility layer (openai/openai.go,
 * middleware/openai.go) would give it.
 */
const CREATED = '2026-12-01T10:00:00.123456789Z'
const CREATED_S = Math.floor(Date.parse(CREATED) / 1000)
const PNG = Buffer.from('not really a png').toString('base64')

const native: { path: string; body: Json }[] = []

function reply(req: IncomingMessage, res: ServerResponse, body: Json) {
  const path = req.url ?? ''
  const json = (status: number, v: unknown) => {
    res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' })
    res.end(JSON.stringify(v))
  }
  if (path === '/api/tags') {
    return json(200, {
      models: [
        { name: 'qwen3:1.7b', model: 'qwen3:1.7b', size: 1_359_293_444, digest: 'q1', modified_at: CREATED },
        {
          name: 'nomic-embed-text:latest',
          model: 'nomic-embed-text:latest',
          size: 274_302_450,
          digest: 'n1',
          modified_at: CREATED,
        },
        { name: 'mistral:7b', model: 'mistral:7b', size: 4_113_301_824, digest: 'm1', modified_at: CREATED },
      ],
    })
  }
  if (path === '/api/ps') return json(200, { models: [] })
  if (path === '/api/show') {
    return json(200, {
      model_info: {
        'general.architecture': 'qwen3',
        'qwen3.block_count': 28,
        'qwen3.attention.head_count': 16,
        'qwen3.attention.head_count_kv': 8,
        'qwen3.attention.key_length': 128,
        'qwen3.attention.value_length': 128,
        'qwen3.embedding_length': 2048,
        'qwen3.context_length': 40960,
        'qwen3.vocab_size': 151936,
      },
    })
  }
  native.push({ path, body })
  const model = body.model
  if (path === '/api/embed') {
    return json(200, { model, embeddings: [[0.5, -1.25, 2]], prompt_eval_count: 3 })
  }
  const first = Array.isArray(body.messages) ? body.messages[0] : undefined
  if (first?.content === 'ollama says no') return json(400, { error: 'invalid options: bad thing' })
  const line = (v: unknown) => `${JSON.stringify(v)}\n`
  const done = { prompt_eval_count: 5, eval_count: 2, total_duration: 1, load_duration: 1 }
  if (path === '/api/generate') {
    if (body.stream === false) {
      return json(200, {
        model,
        created_at: CREATED,
        response: 'Hello',
        done: true,
        done_reason: 'stop',
        ...done,
      })
    }
    res.writeHead(200, { 'content-type': 'application/x-ndjson' })
    res.write(line({ model, created_at: CREATED, response: 'Hel', done: false }))
    res.write(line({ model, created_at: CREATED, response: 'lo', done: false }))
    res.end(line({ model, created_at: CREATED, response: '', done: true, done_reason: 'stop', ...done }))
    return
  }
  const tool = Array.isArray(body.tools) && body.tools.length > 0
  const calls = tool
    ? [{ id: 'call_1', function: { index: 0, name: 'get_weather', arguments: { city: 'Paris' } } }]
    : undefined
  if (body.stream === false) {
    return json(200, {
      model,
      created_at: CREATED,
      message: { role: 'assistant', content: tool ? '' : 'Hello', ...(calls ? { tool_calls: calls } : {}) },
      done: true,
      done_reason: 'stop',
      ...done,
    })
  }
  res.writeHead(200, { 'content-type': 'application/x-ndjson' })
  res.write(
    line({
      model,
      created_at: CREATED,
      message: { role: 'assistant', content: '', thinking: 'hmm' },
      done: false,
    }),
  )
  if (calls) {
    res.write(
      line({
        model,
        created_at: CREATED,
        message: { role: 'assistant', content: '', tool_calls: calls },
        done: false,
      }),
    )
  } else {
    res.write(
      line({ model, created_at: CREATED, message: { role: 'assistant', content: 'Hel' }, done: false }),
    )
    res.write(
      line({ model, created_at: CREATED, message: { role: 'assistant', content: 'lo' }, done: false }),
    )
  }
  res.end(
    line({
      model,
      created_at: '2026-12-01T10:00:09Z',
      message: { role: 'assistant', content: '' },
      done: true,
      done_reason: 'stop',
      ...done,
    }),
  )
}

describe('OpenAI routes, translated to the native ones', () => {
  let upstream: MockUpstream
  let h: GatewayHarness
  let key: string
  let openai: OpenAI

  beforeAll(async () => {
    upstream = await startJsonUpstream(reply)
    h = await startGateway({ fake: false, upstream: upstream.url })
    const role = await h.role({
      name: 'oa',
      max_memory_mb: 8192,
      max_keep_alive_s: 600,
      max_context_tokens: 16384,
      max_concurrent: 4,
      allowed_models: ['qwen3*', 'nomic-embed-text'],
    })
    ;({ key } = await h.device('oa-box', role))
    await h.hub.devices.setAllocation((await h.hub.devices.list()).find((d) => d.name === 'oa-box')!.id, 8192)
    openai = new OpenAI({ baseURL: `${h.url}/v1`, apiKey: key, maxRetries: 0 })
  })
  afterAll(async () => {
    await h?.close()
    await upstream?.close()
  })
  beforeEach(() => {
    native.length = 0
  })

  it('chat, not streaming: ToChatCompletion, and the native request carries our context and keep_alive', async () => {
    const c = await openai.chat.completions.create({
      model: 'qwen3:1.7b',
      messages: [{ role: 'user', content: 'hi' }],
      max_completion_tokens: 50,
      stop: 'END',
      seed: 7,
    })
    expect(c).toMatchObject({
      object: 'chat.completion',
      created: CREATED_S,
      model: 'qwen3:1.7b',
      system_fingerprint: 'fp_ollama',
      choices: [{ index: 0, message: { role: 'assistant', content: 'Hello' }, finish_reason: 'stop' }],
      usage: { prompt_tokens: 5, completion_tokens: 2, total_tokens: 7 },
    })
    expect(c.id).toMatch(/^chatcmpl-\d+$/)
    expect(native).toEqual([
      {
        path: '/api/chat',
        body: {
          model: 'qwen3:1.7b',
          messages: [{ role: 'user', content: 'hi' }],
          stream: false,
          keep_alive: 600,
          options: { stop: ['END'], num_predict: 50, temperature: 1, seed: 7, top_p: 1, num_ctx: 4096 },
        },
      },
    ])
  })

  it('chat, streaming with include_usage: role first, reasoning, content, the finish chunk, the usage chunk, [DONE]', async () => {
    const stream = await openai.chat.completions.create({
      model: 'qwen3:1.7b',
      messages: [{ role: 'user', content: 'hi' }],
      stream: true,
      stream_options: { include_usage: true },
    })
    const chunks: Json[] = []
    for await (const c of stream) chunks.push(c)
    expect(chunks.map((c) => c.choices[0]?.delta ?? null)).toEqual([
      { role: 'assistant', content: '', reasoning: 'hmm' },
      { content: 'Hel' },
      { content: 'lo' },
      {},
      null,
    ])
    expect(chunks.map((c) => c.choices[0]?.finish_reason ?? null)).toEqual([null, null, null, 'stop', null])
    // One created for the whole stream (middleware/openai.go pins the first).
    expect(new Set(chunks.map((c) => c.created))).toEqual(new Set([CREATED_S]))
    expect(chunks.at(-1)).toMatchObject({
      choices: [],
      usage: { prompt_tokens: 5, completion_tokens: 2, total_tokens: 7 },
    })
    expect(native[0]?.body).toMatchObject({ stream: true, options: { num_ctx: 4096 } })
  })

  it('chat, streaming without include_usage: no usage chunk, and the usage is still recorded', async () => {
    const chatRows = async () =>
      (await h.hub.policy.usageReport()).recent.filter((u) => u.endpoint === 'openai:/v1/chat/completions')
    // Usage rows are written in batches: wait until the earlier requests' rows are in.
    await expect.poll(async () => (await chatRows()).length, { timeout: 5000 }).toBeGreaterThanOrEqual(2)
    const before = (await chatRows()).length
    const stream = await openai.chat.completions.create({
      model: 'qwen3:1.7b',
      messages: [{ role: 'user', content: 'hi' }],
      stream: true,
    })
    const chunks: Json[] = []
    for await (const c of stream) chunks.push(c)
    expect(chunks.every((c) => c.usage === undefined)).toBe(true)
    await expect.poll(async () => (await chatRows()).length, { timeout: 5000 }).toBe(before + 1)
    const usage = (await chatRows())[0]
    expect(usage).toMatchObject({
      endpoint: 'openai:/v1/chat/completions',
      prompt_tokens: 5,
      completion_tokens: 2,
    })
  })

  it('tools: calls go native with arguments as objects and come back as JSON strings with finish_reason tool_calls', async () => {
    const tools = [
      {
        type: 'function' as const,
        function: {
          name: 'get_weather',
          parameters: { type: 'object', properties: { city: { type: 'string' } } },
        },
      },
    ]
    const c = await openai.chat.completions.create({
      model: 'qwen3:1.7b',
      tools,
      messages: [
        { role: 'user', content: 'weather?' },
        {
          role: 'assistant',
          content: null,
          tool_calls: [
            {
              id: 'call_0',
              type: 'function',
              function: { name: 'get_weather', arguments: '{"city":"Rome"}' },
            },
          ],
        },
        { role: 'tool', tool_call_id: 'call_0', content: 'sunny' },
      ],
    })
    expect(c.choices[0]).toMatchObject({
      finish_reason: 'tool_calls',
      message: {
        tool_calls: [
          {
            id: 'call_1',
            type: 'function',
            function: { name: 'get_weather', arguments: '{"city":"Paris"}' },
          },
        ],
      },
    })
    expect(native[0]?.body.messages).toEqual([
      { role: 'user', content: 'weather?' },
      {
        role: 'assistant',
        content: '',
        tool_calls: [{ id: 'call_0', function: { name: 'get_weather', arguments: { city: 'Rome' } } }],
      },
      { role: 'tool', content: 'sunny', tool_name: 'get_weather', tool_call_id: 'call_0' },
    ])
    expect(native[0]?.body.tools).toEqual(tools)

    const stream = await openai.chat.completions.create({
      model: 'qwen3:1.7b',
      tools,
      messages: [{ role: 'user', content: 'w' }],
      stream: true,
    })
    const chunks: Json[] = []
    for await (const ch of stream) chunks.push(ch)
    expect(chunks.find((ch) => ch.choices[0]?.delta?.tool_calls)?.choices[0].delta.tool_calls).toEqual([
      {
        id: 'call_1',
        index: 0,
        type: 'function',
        function: { name: 'get_weather', arguments: '{"city":"Paris"}' },
      },
    ])
    expect(chunks.at(-1)?.choices[0]?.finish_reason).toBe('tool_calls')
  })

  it('response_format json_object and json_schema become format; images become native images', async () => {
    await openai.chat.completions.create({
      model: 'qwen3:1.7b',
      messages: [{ role: 'user', content: 'json' }],
      response_format: { type: 'json_object' },
    })
    const schema = { type: 'object', properties: { a: { type: 'number' } } }
    await openai.chat.completions.create({
      model: 'qwen3:1.7b',
      messages: [
        {
          role: 'user',
          content: [
            { type: 'text', text: 'what is this' },
            { type: 'image_url', image_url: { url: `data:image/png;base64,${PNG}` } },
          ],
        },
      ],
      response_format: { type: 'json_schema', json_schema: { name: 's', schema } },
    })
    expect(native[0]?.body.format).toBe('json')
    expect(native[1]?.body.format).toEqual(schema)
    expect(native[1]?.body.messages).toEqual([
      { role: 'user', content: 'what is this' },
      { role: 'user', content: '', images: [PNG] },
    ])
  })

  it('errors: Ollama’s own 400, an image URL, an empty message list, a refusal and a model not installed', async () => {
    const err = async (p: Promise<unknown>) =>
      p.then(
        () => undefined,
        (e: unknown) => e as InstanceType<typeof OpenAI.APIError>,
      )
    const ollama400 = await err(
      openai.chat.completions.create({
        model: 'qwen3:1.7b',
        messages: [{ role: 'user', content: 'ollama says no' }],
      }),
    )
    expect(ollama400).toBeInstanceOf(OpenAI.BadRequestError)
    expect(ollama400?.error).toEqual({
      message: 'invalid options: bad thing',
      type: 'invalid_request_error',
      param: null,
      code: null,
    })
    const url = await err(
      openai.chat.completions.create({
        model: 'qwen3:1.7b',
        messages: [
          {
            role: 'user',
            content: [{ type: 'image_url', image_url: { url: 'https://example.com/cat.png' } }],
          },
        ],
      }),
    )
    expect(url).toBeInstanceOf(OpenAI.BadRequestError)
    expect(url?.message).toMatch(
      /image URLs are not currently supported, please use base64 encoded data instead/,
    )
    const empty = await err(openai.chat.completions.create({ model: 'qwen3:1.7b', messages: [] }))
    expect(empty?.message).toMatch(/\[\] is too short - 'messages'/)
    const refused = await err(
      openai.chat.completions.create({ model: 'mistral:7b', messages: [{ role: 'user', content: 'x' }] }),
    )
    expect(refused).toBeInstanceOf(OpenAI.PermissionDeniedError)
    const missing = await err(
      openai.chat.completions.create({ model: 'qwen3:32b', messages: [{ role: 'user', content: 'x' }] }),
    )
    expect(missing).toBeInstanceOf(OpenAI.NotFoundError)
    expect(missing?.message).toMatch(/model 'qwen3:32b' not found/)
    // Only Ollama's own 400 reached it; everything else was answered by the gateway.
    expect(native).toHaveLength(1)
  })

  it('completions, streaming and not (CompleteWriter: a zero usage on each chunk when asked, then the usage chunk)', async () => {
    const c = await openai.completions.create({ model: 'qwen3:1.7b', prompt: 'say', max_tokens: 9 })
    expect(c).toMatchObject({
      object: 'text_completion',
      choices: [{ text: 'Hello', index: 0, finish_reason: 'stop' }],
      usage: { prompt_tokens: 5, completion_tokens: 2, total_tokens: 7 },
    })
    expect(c.id).toMatch(/^cmpl-\d+$/)
    expect(native[0]).toMatchObject({
      path: '/api/generate',
      body: {
        prompt: 'say',
        stream: false,
        keep_alive: 600,
        options: { num_predict: 9, num_ctx: 4096, frequency_penalty: 0, presence_penalty: 0 },
      },
    })
    const stream = await openai.completions.create({
      model: 'qwen3:1.7b',
      prompt: 'say',
      stream: true,
      stream_options: { include_usage: true },
    })
    const chunks: Json[] = []
    for await (const ch of stream) chunks.push(ch)
    expect(chunks.map((ch) => ch.choices[0]?.text ?? null)).toEqual(['Hel', 'lo', '', null])
    expect(chunks[0].usage).toEqual({ prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 })
    expect(chunks.at(-1)).toMatchObject({ choices: [], usage: { total_tokens: 7 } })
  })

  it('embeddings: the client’s default base64 and float, with the context ours', async () => {
    const e = await openai.embeddings.create({ model: 'nomic-embed-text', input: 'hello' })
    expect(e.data[0]?.embedding).toEqual([0.5, -1.25, 2])
    expect(e).toMatchObject({
      object: 'list',
      model: 'nomic-embed-text',
      usage: { prompt_tokens: 3, total_tokens: 3 },
    })
    const f = await openai.embeddings.create({
      model: 'nomic-embed-text',
      input: ['a'],
      encoding_format: 'float',
    })
    expect(f.data[0]?.embedding).toEqual([0.5, -1.25, 2])
    expect(native[0]).toMatchObject({
      path: '/api/embed',
      body: { model: 'nomic-embed-text:latest', input: 'hello', keep_alive: 600, options: { num_ctx: 4096 } },
    })
    const bad = await post(`${h.url}/v1/embeddings`, key, {
      model: 'nomic-embed-text',
      input: 'x',
      encoding_format: 'int8',
    })
    expect(bad.status).toBe(400)
    expect(bad.json().error.message).toBe(
      "Invalid value for 'encoding_format' = int8. Supported values: ['float', 'base64'].",
    )
  })

  it('models.retrieve answers for a model the role may use, 404 otherwise', async () => {
    expect(await openai.models.retrieve('qwen3:1.7b')).toEqual({
      id: 'qwen3:1.7b',
      object: 'model',
      created: CREATED_S,
      owned_by: 'library',
    })
    await expect(openai.models.retrieve('mistral:7b')).rejects.toBeInstanceOf(OpenAI.NotFoundError)
    await expect(openai.models.retrieve('nothing-here')).rejects.toBeInstanceOf(OpenAI.NotFoundError)
    const owner = new OpenAI({ baseURL: `${h.url}/v1`, apiKey: ADMIN_SECRET, maxRetries: 0 })
    expect((await owner.models.retrieve('mistral:7b')).id).toBe('mistral:7b')
  })
})

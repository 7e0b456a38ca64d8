import assert from 'node:assert/strict'
import { request } from 'node:http'
import type { TestFn } from './conformance'

/**
 * What sharedLLM believes about Ollama (0.33), written down once: `ollamaContract(test, { baseUrl })`
 * registers one test per behaviour. CI runs it against the stand-in (test/ollama-contract.test.ts);
 * `OLLAMA_CONTRACT_URL=http://127.0.0.1:11434 pnpm test:contract` runs it against a real Ollama.
 * Every expectation names the Ollama source file it comes from.
 *
 * The suite changes what is loaded (it loads, reloads and unloads models); point it at an Ollama nobody is
 * using. Models it needs must be installed; a role left empty leaves its tests out.
 */
export interface OllamaContractOptions {
  /** `http://127.0.0.1:11434`, or a function read when each test runs (for a server started in beforeAll). */
  baseUrl: string | (() => string)
  models?: {
    /** A small completion model without thinking. @default 'llama3.2:3b' */
    chat?: string
    /** A model with the thinking capability. @default 'qwen3:1.7b' */
    thinking?: string
    /** An embedding-only model. @default 'all-minilm:l6-v2' */
    embed?: string
    /** A vision model with a separate projector. @default 'minicpm-v:8b' */
    vision?: string
    /** A model with sliding-window attention. @default 'gemma3:4b' */
    slidingWindow?: string
    /** An installed cloud model (remote_host set), e.g. 'gpt-oss:20b-cloud'. @default none */
    cloud?: string
    /** An attention + recurrent (SSM) hybrid with a per-layer head_count_kv. @default 'granite4:tiny-h' */
    hybrid?: string
    /** An MLA model (deepseek2 with key_length_mla, one KV head). @default 'glm-4.7-flash' */
    mla?: string
    /** A safetensors model run by the MLX runner (`ollama create --experimental`). @default none */
    mlx?: string
  }
  /** What the caller knows about how that server was started. */
  server?: {
    /** OLLAMA_CONTEXT_LENGTH; unset: the VRAM tier decides (4096 / 32768 / 262144). */
    contextLength?: number
    /** OLLAMA_KEEP_ALIVE in seconds. @default 300 */
    keepAliveSeconds?: number
    /** OLLAMA_NO_CLOUD is set. @default false */
    noCloud?: boolean
    /** OLLAMA_MAX_QUEUE, when it is small enough to fill (loads must take time). */
    maxQueue?: number
    /** The generation speed, when known: stream:false answers cannot come faster. */
    tokensPerSecond?: number
    /** Pulling a name the registry does not have fails (true for a real registry). @default true */
    strictRegistry?: boolean
    /** The suite may pull (a real pull downloads from the registry). @default true */
    pulls?: boolean
    /**
     * The server listens on a loopback address and the suite reaches it there, so the DNS-rebinding check
     * applies (routes.go allowedHostsMiddleware). @default true
     */
    boundToLoopback?: boolean
  }
  /** Prefix for test names. @default 'ollama contract' */
  label?: string
  /** Per-test timeout. @default 60000 */
  timeoutMs?: number
}

type Json = Record<string, unknown>

export function ollamaContract(test: TestFn, opts: OllamaContractOptions): void {
  const base = () => (typeof opts.baseUrl === 'function' ? opts.baseUrl() : opts.baseUrl).replace(/\/+$/, '')
  const label = opts.label ?? 'ollama contract'
  const timeout = opts.timeoutMs ?? 60_000
  const m = {
    chat: 'llama3.2:3b',
    thinking: 'qwen3:1.7b',
    embed: 'all-minilm:l6-v2',
    vision: 'minicpm-v:8b',
    slidingWindow: 'gemma3:4b',
    cloud: '',
    hybrid: 'granite4:tiny-h',
    mla: 'glm-4.7-flash',
    mlx: '',
    ...opts.models,
  }
  // one spelling per role: name:tag (types/model/name.go fills in "latest"), as /api/tags and /api/ps list it
  for (const role of Object.keys(m) as (keyof typeof m)[]) m[role] = withTag(m[role])
  const server = {
    keepAliveSeconds: 300,
    noCloud: false,
    strictRegistry: true,
    pulls: true,
    boundToLoopback: true,
    ...opts.server,
  }
  const t = (name: string, fn: () => Promise<void>) => test(`${label}: ${name}`, fn, timeout)

  const call = (path: string, init: RequestInit = {}) => fetch(base() + path, init)
  const post = (path: string, body: unknown) =>
    call(path, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    })
  const json = async (res: Response) => (await res.json()) as Json
  async function ndjson(res: Response): Promise<Json[]> {
    const text = await res.text()
    return text
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map((l) => JSON.parse(l) as Json)
  }
  /** NDJSON lines with the time each arrived. */
  async function ndjsonTimed(res: Response): Promise<{ line: Json; at: number }[]> {
    const out: { line: Json; at: number }[] = []
    const reader = res.body!.getReader()
    const dec = new TextDecoder()
    let buf = ''
    for (;;) {
      const { value, done } = await reader.read()
      if (done) break
      buf += dec.decode(value, { stream: true })
      let nl = buf.indexOf('\n')
      while (nl >= 0) {
        const l = buf.slice(0, nl)
        buf = buf.slice(nl + 1)
        if (l.trim() !== '') out.push({ line: JSON.parse(l) as Json, at: Date.now() })
        nl = buf.indexOf('\n')
      }
    }
    if (buf.trim() !== '') out.push({ line: JSON.parse(buf) as Json, at: Date.now() })
    return out
  }
  async function sse(res: Response): Promise<(Json | '[DONE]')[]> {
    const text = await res.text()
    return text
      .split('\n\n')
      .filter((b) => b.startsWith('data: '))
      .map((b) => b.slice(6))
      .map((d) => (d === '[DONE]' ? d : (JSON.parse(d) as Json)))
  }
  const ps = async () => ((await json(await call('/api/ps'))).models as Json[]) ?? []
  // /api/ps names a model with its tag (DisplayShortest): "x" is listed as "x:latest"
  const psOf = async (name: string) => {
    const names = name.includes(':') ? [name] : [name, `${name}:latest`]
    return (await ps()).find((x) => names.includes(String(x.name)) || names.includes(String(x.model)))
  }
  const unload = async (model: string) => {
    const res = await post('/api/generate', { model, keep_alive: 0 })
    await res.arrayBuffer()
  }
  const load = async (model: string, extra: Json = {}) => {
    const res = await post('/api/generate', { model, stream: false, ...extra })
    assert.equal(res.status, 200, `loading ${model}: ${res.status} ${await res.clone().text()}`)
    return json(res)
  }
  const chat = (model: string, extra: Json = {}) =>
    post('/api/chat', { model, stream: false, messages: [{ role: 'user', content: 'say hi' }], ...extra })
  const show = async (model: string, verbose = false) => json(await post('/api/show', { model, verbose }))
  const arch = (info: Json) => String(info['general.architecture'])
  /** /api/ps bytes per token of context between a load at 2048 and one at 8192 (a reload). */
  const growthPerToken = async (model: string) => {
    await unload(model)
    await load(model, { options: { num_ctx: 2048 } })
    const small = Number((await psOf(model))?.size)
    await load(model, { options: { num_ctx: 8192 } })
    const big = await psOf(model)
    assert.equal(big?.context_length, 8192, `${model} reloaded at 8192`)
    await unload(model)
    return (Number(big?.size) - small) / (8192 - 2048)
  }
  const trainedContext = async (model: string) => {
    const info = (await show(model)).model_info as Json
    return Number(info[`${arch(info)}.context_length`])
  }

  // ---- routes and status codes (server/routes.go GenerateRoutes) ----

  t('HEAD /, HEAD /api/version and HEAD /api/tags are 200', async () => {
    for (const path of ['/', '/api/version', '/api/tags']) {
      const res = await call(path, { method: 'HEAD' })
      assert.equal(res.status, 200, `HEAD ${path}`)
    }
    assert.equal(await (await call('/')).text(), 'Ollama is running')
  })

  t('an unknown path is the plain-text 404; a known path with another method is a 405', async () => {
    const nf = await call('/api/does-not-exist')
    assert.equal(nf.status, 404)
    assert.equal(await nf.text(), '404 page not found')
    // gin with HandleMethodNotAllowed = true
    const wrong = await call('/api/chat')
    assert.equal(wrong.status, 405)
    await wrong.arrayBuffer()
  })

  t(
    'a body that is not JSON is a 400 with Go’s decoder message; an empty body is "missing request body"',
    async () => {
      const bad = await post('/api/generate', '{model: 1}')
      assert.equal(bad.status, 400)
      assert.deepEqual(await json(bad), {
        error: "invalid character 'm' looking for beginning of object key string",
      })
      const empty = await post('/api/chat', '')
      assert.equal(empty.status, 400)
      assert.deepEqual(await json(empty), { error: 'missing request body' })
    },
  )

  const tIf = (on: boolean, name: string, fn: () => Promise<void>) => {
    if (on) t(name, fn)
  }

  tIf(
    server.boundToLoopback,
    'bound to loopback, a request whose Host is not local is an empty 403 (routes.go allowedHostsMiddleware)',
    async () => {
      const url = new URL(base())
      const status = (host: string) =>
        new Promise<number>((resolve, reject) => {
          const req = request(
            { hostname: url.hostname, port: url.port, path: '/api/version', headers: { host } },
            (res) => {
              res.resume()
              resolve(res.statusCode ?? 0)
            },
          )
          req.on('error', reject)
          req.end()
        })
      assert.equal(await status('evil.example.com'), 403)
      assert.equal(await status('8.8.8.8:11434'), 403)
      for (const ok of ['localhost:11434', 'sharedllm.local', '192.168.1.20:11434', '127.0.0.1']) {
        assert.equal(await status(ok), 200, ok)
      }
    },
  )

  // ---- tags, show, ps ----

  t(
    '/api/tags lists each model with capabilities and its GGUF context length (server/model_list_cache.go)',
    async () => {
      const models = (await json(await call('/api/tags'))).models as Json[]
      const row = models.find((x) => x.name === m.chat)
      assert.ok(row, `${m.chat} is installed`)
      assert.equal(typeof row.size, 'number')
      assert.match(String(row.digest), /^[0-9a-f]{64}$/)
      assert.ok(Array.isArray(row.capabilities) && (row.capabilities as string[]).includes('completion'))
      const details = row.details as Json
      assert.equal(details.context_length, await trainedContext(m.chat))
    },
  )

  t(
    '/api/show sends the model’s own model_info; non-verbose arrays are null, verbose ones are sent',
    async () => {
      const s = await show(m.chat)
      const info = s.model_info as Json
      const family = (s.details as Json).family
      assert.equal(arch(info), family)
      assert.equal(typeof info[`${family}.block_count`], 'number')
      // fs/ggml/gguf.go: with maxArraySize 0 every non-empty array is decoded without values
      assert.equal(info['tokenizer.ggml.tokens'], null)
      const verbose = (await show(m.chat, true)).model_info as Json
      assert.ok(
        Array.isArray(verbose['tokenizer.ggml.tokens']) &&
          (verbose['tokenizer.ggml.tokens'] as unknown[]).length > 1000,
      )
    },
  )

  if (m.slidingWindow) {
    t('a sliding-window model reports its window in model_info', async () => {
      const info = (await show(m.slidingWindow)).model_info as Json
      assert.equal(typeof info[`${arch(info)}.attention.sliding_window`], 'number')
    })
  }

  if (m.vision) {
    t('a vision model with a projector sends projector_info and the vision capability', async () => {
      const s = await show(m.vision)
      assert.ok((s.capabilities as string[]).includes('vision'))
      assert.equal(typeof s.projector_info, 'object')
      assert.equal((s.projector_info as Json)['general.architecture'], 'clip')
    })
  }

  if (m.hybrid) {
    t(
      'a hybrid model: head_count_kv is a per-layer array (null unless verbose); only its attention layers grow with the context',
      async () => {
        const info = (await show(m.hybrid)).model_info as Json
        const a = arch(info)
        // fs/ggml/gguf.go: arrays are decoded without values unless verbose
        assert.equal(info[`${a}.attention.head_count_kv`], null)
        const perLayer = ((await show(m.hybrid, true)).model_info as Json)[`${a}.attention.head_count_kv`]
        assert.ok(Array.isArray(perLayer), 'verbose sends the per-layer array')
        const kvHeads = perLayer as number[]
        assert.equal(kvHeads.length, Number(info[`${a}.block_count`]))
        const attention = kvHeads.filter((h) => h > 0).length
        assert.ok(attention > 0 && attention < kvHeads.length, 'layers with 0 KV heads are recurrent')
        assert.equal(typeof info[`${a}.ssm.state_size`], 'number')
        const heads = Number(info[`${a}.attention.head_count`])
        const headDim = Number(
          info[`${a}.attention.key_length`] ?? Number(info[`${a}.embedding_length`]) / heads,
        )
        // fs/ggml/ggml.go GraphSize: a recurrent layer holds a fixed f32 state, not context × (K + V)
        const everyLayerAttention = kvHeads.length * Math.max(...kvHeads) * 2 * headDim * 2
        const growth = await growthPerToken(m.hybrid)
        assert.ok(
          growth > 0 && growth < everyLayerAttention,
          `grows ${growth} B/token, below ${everyLayerAttention} if every layer cached K and V`,
        )
      },
    )
  }

  if (m.mla) {
    t(
      'an MLA model caches one compressed KV head (key_length = kv_lora_rank + rope), far below per-head K and V',
      async () => {
        const info = (await show(m.mla)).model_info as Json
        const a = arch(info)
        const n = (k: string) => Number(info[`${a}.${k}`])
        // convert/convert_glm4moelite.go: the _mla keys are the per-head sizes, key/value_length the cache
        assert.equal(typeof info[`${a}.attention.key_length_mla`], 'number')
        assert.equal(n('attention.head_count_kv'), 1)
        assert.equal(n('attention.key_length'), n('attention.kv_lora_rank') + n('rope.dimension_count'))
        assert.equal(n('attention.value_length'), n('attention.kv_lora_rank'))
        const perHead =
          n('block_count') *
          n('attention.head_count') *
          (n('attention.key_length_mla') + n('attention.value_length_mla')) *
          2
        const growth = await growthPerToken(m.mla)
        assert.ok(
          growth > 0 && growth < perHead / 4,
          `grows ${growth} B/token; K and V per head would be ${perHead}`,
        )
      },
    )
  }

  if (m.mlx) {
    t(
      'an MLX (safetensors) model: context_length 0 while loading, then num_ctx; another num_ctx keeps the runner and its size',
      async () => {
        const s = await show(m.mlx)
        // routes.go GetModelInfo: model_info from config.json (x/server/show.go), no GGUF arrays, no tensors
        assert.equal((s.details as Json).format, 'safetensors')
        const info = s.model_info as Json
        assert.equal(typeof info[`${arch(info)}.block_count`], 'number')
        assert.ok(!Object.values(info).includes(null), 'no null arrays')
        assert.equal(s.tensors, undefined)
        const row = ((await json(await call('/api/tags'))).models as Json[]).find(
          (x) => x.name === m.mlx || x.name === `${m.mlx}:latest`,
        )
        assert.ok(row, `${m.mlx} is listed under that name`)
        assert.equal((row.details as Json).context_length, undefined, 'no GGUF layer to read it from')
        await unload(m.mlx)
        let done = false
        const pending = load(m.mlx, { options: { num_ctx: 2048 } }).finally(() => {
          done = true
        })
        const seen: number[] = []
        while (!done) {
          const r = await psOf(m.mlx)
          if (r && !done) seen.push(Number(r.context_length))
          await new Promise((resolve) => setTimeout(resolve, 10))
        }
        await pending
        // x/mlxrunner/client.go: ContextLength is 0 until the runner's first /v1/status
        assert.ok(seen.includes(0), `context_length while loading: ${seen.slice(0, 5)}`)
        const first = await psOf(m.mlx)
        assert.equal(first?.context_length, Math.min(2048, Number(info[`${arch(info)}.context_length`])))
        // sched.go needsReload skips the options for MLX: the runner stays, with its first context
        await load(m.mlx, { options: { num_ctx: 8192 } })
        const again = await psOf(m.mlx)
        assert.equal(again?.context_length, first?.context_length)
        // MemorySize is what MLX holds (the cache grows with tokens), not an estimate at num_ctx
        assert.ok(Number(again?.size) < Number(first?.size) * 1.05, `size ${again?.size} vs ${first?.size}`)
        await unload(m.mlx)
      },
    )
  }

  t(
    '/api/show of a missing model is 404 naming it with its tag (ShowHandler canonicalises first)',
    async () => {
      const res = await post('/api/show', { model: 'sharedllm-contract-missing' })
      assert.equal(res.status, 404)
      assert.deepEqual(await json(res), { error: "model 'sharedllm-contract-missing:latest' not found" })
    },
  )

  t(
    '/api/ps size is weights + KV cache + graph: above the file size, and it grows with the context',
    async () => {
      const fileSize = Number(
        ((await json(await call('/api/tags'))).models as Json[]).find((x) => x.name === m.chat)?.size,
      )
      await unload(m.chat)
      await load(m.chat, { options: { num_ctx: 2048 } })
      const small = await psOf(m.chat)
      assert.ok(small, 'loaded')
      assert.equal(small.context_length, 2048)
      assert.ok(Number(small.size) > fileSize, `size ${small.size} > file ${fileSize}`)
      await load(m.chat, { options: { num_ctx: 8192 } })
      const big = await psOf(m.chat)
      assert.equal(big?.context_length, 8192, 'a different num_ctx reloads the model (sched.go needsReload)')
      assert.ok(
        Number(big?.size) > Number(small.size),
        `size grows with the context: ${big?.size} > ${small.size}`,
      )
      await load(m.chat, { options: { num_ctx: 8192 } })
      assert.equal((await psOf(m.chat))?.size, big?.size, 'the same num_ctx keeps the runner')
      await unload(m.chat)
    },
  )

  t(
    'the context defaults to OLLAMA_CONTEXT_LENGTH or the VRAM tier, capped at the trained context',
    async () => {
      await unload(m.chat)
      await load(m.chat)
      const row = await psOf(m.chat)
      const trained = await trainedContext(m.chat)
      if (server.contextLength) {
        assert.equal(row?.context_length, Math.min(server.contextLength, trained))
      } else {
        // server/routes.go Serve: 4096 below 23 GiB, 32768 below 47 GiB, else 262144
        assert.ok(
          [4096, 32768, 262144].map((n) => Math.min(n, trained)).includes(Number(row?.context_length)),
        )
      }
      await unload(m.chat)
    },
  )

  // a model with a small trained context (all-minilm: 512), so asking for 4× it allocates little
  tIf(Boolean(m.embed), 'a num_ctx above the trained context is cut to it (llm/server.go)', async () => {
    const trained = await trainedContext(m.embed)
    // routes.go EmbedHandler: an empty input only schedules the runner, with the request's options
    const res = await post('/api/embed', { model: m.embed, input: '', options: { num_ctx: trained * 4 } })
    assert.equal(res.status, 200, await res.clone().text())
    await res.arrayBuffer()
    assert.equal((await psOf(m.embed))?.context_length, trained)
    await unload(m.embed)
  })

  // ---- names (types/model/name.go, internal/modelref/modelref.go, routes.go getExistingName) ----

  t('names resolve with library/, registry.ollama.ai/library/, any case and the :local suffix', async () => {
    const cut = m.chat.lastIndexOf(':')
    const [model, tag] = [m.chat.slice(0, cut), m.chat.slice(cut + 1)]
    for (const name of [
      `library/${m.chat}`,
      `registry.ollama.ai/library/${m.chat}`,
      m.chat.toUpperCase(),
      `${model}:${tag.toUpperCase()}`,
      `${m.chat}:local`,
    ]) {
      const res = await post('/api/show', { model: name })
      assert.equal(res.status, 200, `show ${name}`)
      await res.arrayBuffer()
    }
    const res = await chat(`library/${m.chat}`)
    assert.equal(res.status, 200)
    assert.equal((await json(res)).model, `library/${m.chat}`, 'answers carry the name as asked')
  })

  t('an invalid name is a 400 "invalid model name"; a missing one a 404 with the name as given', async () => {
    const bad = await chat('bad name!')
    assert.equal(bad.status, 400)
    assert.deepEqual(await json(bad), { error: 'invalid model name' })
    const missing = await chat('sharedllm-contract-missing')
    assert.equal(missing.status, 404)
    assert.deepEqual(await json(missing), { error: "model 'sharedllm-contract-missing' not found" })
    // GenerateHandler sends a missing model name through its not-found fallback; ChatHandler says required
    const noModel = await post('/api/generate', { prompt: 'x' })
    assert.equal(noModel.status, 404)
    assert.deepEqual(await json(noModel), { error: "model '' not found" })
    const noModelChat = await post('/api/chat', { messages: [] })
    assert.equal(noModelChat.status, 400)
    assert.deepEqual(await json(noModelChat), { error: 'model is required' })
  })

  if (server.noCloud) {
    t('with OLLAMA_NO_CLOUD an explicit :cloud model is a 403 (server/cloud_proxy.go)', async () => {
      const res = await chat('gpt-oss:20b:cloud')
      assert.equal(res.status, 403)
      assert.deepEqual(await json(res), { error: 'ollama cloud is disabled: remote model is unavailable' })
      if (m.cloud) {
        const stub = await chat(m.cloud)
        assert.equal(stub.status, 403, 'nor does an installed cloud model run')
        await stub.arrayBuffer()
      }
    })
  }

  if (m.cloud) {
    t('a cloud model is listed with remote_host and remote_model, and never loads locally', async () => {
      const row = ((await json(await call('/api/tags'))).models as Json[]).find((x) => x.name === m.cloud)
      assert.ok(row, `${m.cloud} is installed`)
      assert.match(String(row.remote_host), /^https:\/\/ollama\.com/)
      assert.equal(typeof row.remote_model, 'string')
      if (!server.noCloud) {
        const res = await chat(m.cloud)
        assert.equal(res.status, 200)
        await res.arrayBuffer()
        assert.equal(await psOf(m.cloud), undefined)
      }
    })
  }

  // ---- keep_alive (api/types.go Duration.UnmarshalJSON, envconfig.KeepAlive) ----

  t('keep_alive: numbers are seconds, strings go through time.ParseDuration ("300" is a 400)', async () => {
    const refused = await chat(m.chat, { keep_alive: '300' })
    assert.equal(refused.status, 400)
    assert.deepEqual(await json(refused), { error: 'time: missing unit in duration "300"' })
    const wrongType = await chat(m.chat, { keep_alive: true })
    assert.equal(wrongType.status, 400)
    assert.deepEqual(await json(wrongType), { error: "Unsupported type: 'bool'" })
    const secs = await chat(m.chat, { keep_alive: 120 })
    assert.equal(secs.status, 200)
    await secs.arrayBuffer()
    const left = Date.parse(String((await psOf(m.chat))?.expires_at)) - Date.now()
    assert.ok(left > 100_000 && left <= 121_000, `expires in ${left} ms`)
    const forever = await chat(m.chat, { keep_alive: '-1m' })
    await forever.arrayBuffer()
    assert.ok(Date.parse(String((await psOf(m.chat))?.expires_at)) > Date.now() + 100 * 365 * 86_400_000)
    const unloadRes = await post('/api/chat', { model: m.chat, messages: [], keep_alive: 0 })
    assert.equal((await json(unloadRes)).done_reason, 'unload')
    await waitFor(async () => (await psOf(m.chat)) === undefined, 'unloaded')
  })

  t('without keep_alive a model stays loaded for OLLAMA_KEEP_ALIVE', async () => {
    const res = await chat(m.chat)
    await res.arrayBuffer()
    const left = Date.parse(String((await psOf(m.chat))?.expires_at)) - Date.now()
    const want = server.keepAliveSeconds * 1000
    assert.ok(left > want - 20_000 && left <= want + 1000, `expires in ${left} ms, want ${want}`)
    await unload(m.chat)
  })

  // ---- JSON decoding (encoding/json via gin ShouldBindJSON) ----

  t('JSON keys match case-insensitively (Unicode simple folding too) and the last match wins', async () => {
    const upper = await post('/api/chat', {
      MODEL: m.chat,
      Stream: false,
      Messages: [{ ROLE: 'user', Content: 'hi' }],
    })
    assert.equal(upper.status, 200)
    assert.equal((await json(upper)).done, true)
    const last = await post(
      '/api/chat',
      `{"model":"sharedllm-contract-missing","Model":"${m.chat}","stream":false,"messages":[]}`,
    )
    assert.equal(last.status, 200)
    await last.arrayBuffer()
    // the last in document order, even when an identical key came before the folded one
    const again = await post(
      '/api/chat',
      `{"model":"${m.chat}","Model":"sharedllm-contract-missing","model":"${m.chat}","stream":false,"messages":[]}`,
    )
    assert.equal(again.status, 200, await again.clone().text())
    await again.arrayBuffer()
    // U+017F LATIN SMALL LETTER LONG S folds to s: "ſtream" is "stream"
    const folded = await post(
      '/api/chat',
      `{"model":"${m.chat}","\u017Ftream":false,"messages":[{"role":"user","content":"hi"}]}`,
    )
    assert.match(String(folded.headers.get('content-type')), /^application\/json/)
    assert.equal((await json(folded)).done, true)
    const wrong = await post('/api/chat', { model: m.chat, stream: 'no' })
    assert.equal(wrong.status, 400)
    assert.match(
      String((await json(wrong)).error),
      /^json: cannot unmarshal string into Go struct field ChatRequest\.stream of type bool/,
    )
  })

  // ---- chat / generate / embed shapes ----

  t(
    'chat streams NDJSON chunks and a final object with the counts; stream:false waits for the whole answer',
    async () => {
      const streamed = await post('/api/chat', {
        model: m.chat,
        messages: [{ role: 'user', content: 'one two three four five' }],
      })
      assert.equal(streamed.headers.get('content-type'), 'application/x-ndjson')
      const timed = await ndjsonTimed(streamed)
      const lines = timed.map((x) => x.line)
      const final = lines.at(-1) as Json
      assert.equal(final.done, true)
      assert.equal(final.done_reason, 'stop')
      for (const k of [
        'total_duration',
        'load_duration',
        'prompt_eval_count',
        'eval_count',
        'eval_duration',
      ]) {
        assert.equal(typeof final[k], 'number', k)
      }
      assert.deepEqual(Object.keys(lines[0]!.message as Json).sort(), ['content', 'role'])
      const t0 = Date.now()
      const whole = await post('/api/chat', {
        model: m.chat,
        stream: false,
        messages: [{ role: 'user', content: 'one two three four five' }],
      })
      const headersMs = Date.now() - t0
      const one = await json(whole)
      assert.equal(one.done, true)
      assert.ok(String((one.message as Json).content).length > 0)
      if (server.tokensPerSecond) {
        // the headers come only when every token exists (routes.go collects the channel first)
        const minMs = (Number(one.eval_count) / server.tokensPerSecond) * 1000 * 0.8
        assert.ok(
          headersMs >= minMs,
          `stream:false headers after ${headersMs} ms, the answer needs ${minMs} ms`,
        )
        // streamed, each chunk is written as it is generated: the first arrives well before the last
        const spanMs = timed.at(-1)!.at - timed[0]!.at
        const needMs = ((Number(final.eval_count) - 1) / server.tokensPerSecond) * 1000 * 0.5
        assert.ok(spanMs >= needMs, `chunks spread over ${spanMs} ms, generating them takes ${needMs * 2} ms`)
      }
    },
  )

  if (m.thinking) {
    t('a thinking model streams `thinking` first unless think:false; others refuse think:true', async () => {
      const lines = await ndjson(
        await post('/api/chat', { model: m.thinking, messages: [{ role: 'user', content: 'hi' }] }),
      )
      assert.ok(
        lines.some(
          (l) => typeof (l.message as Json)?.thinking === 'string' && (l.message as Json).thinking !== '',
        ),
      )
      const plain = await ndjson(
        await post('/api/chat', {
          model: m.thinking,
          think: false,
          messages: [{ role: 'user', content: 'hi' }],
        }),
      )
      assert.ok(plain.every((l) => !(l.message as Json)?.thinking))
      const refused = await chat(m.chat, { think: true })
      assert.equal(refused.status, 400)
      assert.deepEqual(await json(refused), { error: `"${m.chat}" does not support thinking` })
    })
  }

  t('generate with no prompt loads (done_reason "load"); with keep_alive 0 it unloads', async () => {
    const loaded = await load(m.chat)
    assert.equal(loaded.done_reason, 'load')
    assert.equal(loaded.response, '')
    const res = await post('/api/generate', { model: m.chat, keep_alive: 0 })
    assert.equal((await json(res)).done_reason, 'unload')
    await waitFor(async () => (await psOf(m.chat)) === undefined, 'unloaded')
  })

  if (m.embed) {
    t('/api/embed answers embeddings and counts; an embedding model cannot chat', async () => {
      const res = await post('/api/embed', { model: m.embed, input: ['a', 'b'] })
      assert.equal(res.status, 200)
      const body = await json(res)
      assert.equal((body.embeddings as number[][]).length, 2)
      for (const k of ['total_duration', 'load_duration', 'prompt_eval_count'])
        assert.equal(typeof body[k], 'number', k)
      // routes.go EmbedHandler: an empty string is no input (`if len(i) > 0`); the model still loads
      const empty = await post('/api/embed', { model: m.embed, input: '' })
      assert.equal(empty.status, 200)
      assert.deepEqual(await json(empty), { model: m.embed, embeddings: [] })
      const s = await show(m.embed)
      assert.deepEqual(s.capabilities, ['embedding'])
      const refused = await chat(m.embed)
      assert.equal(refused.status, 400)
      assert.deepEqual(await json(refused), { error: `"${m.embed}" does not support chat` })
      await unload(m.embed)
    })
  }

  t(
    '/api/embed and /v1/embeddings: no model is 404 "model \'\' not found", a missing one "try pulling it first"',
    async () => {
      // routes.go EmbedHandler: writeModelRefParseError's fallback for no model; getModel's os.ErrNotExist
      // through handleScheduleError for one that is not installed
      const none = await post('/api/embed', { input: 'x' })
      assert.equal(none.status, 404)
      assert.deepEqual(await json(none), { error: "model '' not found" })
      const missing = await post('/api/embed', { model: 'sharedllm-contract-missing', input: 'x' })
      assert.equal(missing.status, 404)
      const message = 'model "sharedllm-contract-missing" not found, try pulling it first'
      assert.deepEqual(await json(missing), { error: message })
      // middleware/openai.go EmbeddingsMiddleware hands the request to the same handler
      const v1 = await post('/v1/embeddings', { model: 'sharedllm-contract-missing', input: 'x' })
      assert.equal(v1.status, 404)
      assert.deepEqual(await json(v1), {
        error: { message, type: 'not_found_error', param: null, code: null },
      })
    },
  )

  tIf(
    server.pulls,
    'pull streams status lines ending in success; stream:false answers one object',
    async () => {
      const lines = await ndjson(await post('/api/pull', { model: m.chat }))
      assert.ok(lines.every((l) => typeof l.status === 'string'))
      assert.equal(lines.at(-1)?.status, 'success')
      const one = await post('/api/pull', { model: m.chat, stream: false })
      assert.equal(one.headers.get('content-type')?.startsWith('application/json'), true)
      assert.deepEqual(await json(one), { status: 'success' })
      if (server.strictRegistry) {
        const missing = await ndjson(await post('/api/pull', { model: 'sharedllm-contract-missing' }))
        assert.equal(missing.at(-1)?.error, 'pull model manifest: file does not exist')
      }
    },
  )

  // ---- /v1 (middleware/openai.go, openai/openai.go) ----

  t('/v1/chat/completions streams role only in the first delta, then an empty finish delta', async () => {
    const events = await sse(
      await post('/v1/chat/completions', {
        model: m.chat,
        stream: true,
        messages: [{ role: 'user', content: 'a b c' }],
      }),
    )
    assert.equal(events.at(-1), '[DONE]')
    const chunks = events.filter((e): e is Json => e !== '[DONE]')
    const deltas = chunks.map((c) => ((c.choices as Json[])[0]?.delta ?? {}) as Json)
    assert.equal(deltas[0]?.role, 'assistant')
    assert.ok(
      deltas.slice(1).every((d) => d.role === undefined),
      'role only in the first delta',
    )
    assert.deepEqual(deltas.at(-1), {})
    assert.equal(((chunks.at(-1)?.choices ?? []) as Json[])[0]?.finish_reason, 'stop')
    assert.ok(chunks.every((c) => c.id === chunks[0]?.id && /^chatcmpl-\d+$/.test(String(c.id))))
  })

  t('/v1/completions with include_usage puts a zero usage on every chunk, then the real usage', async () => {
    const events = await sse(
      await post('/v1/completions', {
        model: m.chat,
        prompt: 'a b',
        stream: true,
        stream_options: { include_usage: true },
      }),
    )
    const chunks = events.filter((e): e is Json => e !== '[DONE]')
    const last = chunks.at(-1) as Json
    assert.deepEqual(last.choices, [])
    assert.ok(Number((last.usage as Json).completion_tokens) > 0)
    for (const c of chunks.slice(0, -1)) {
      assert.deepEqual(c.usage, { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 })
    }
  })

  t(
    '/v1 errors: not_found_error with Ollama’s message; an empty messages list is invalid_request_error',
    async () => {
      const missing = await post('/v1/chat/completions', {
        model: 'sharedllm-contract-missing',
        messages: [{ role: 'user', content: 'x' }],
      })
      assert.equal(missing.status, 404)
      assert.deepEqual(await json(missing), {
        error: {
          message: "model 'sharedllm-contract-missing' not found",
          type: 'not_found_error',
          param: null,
          code: null,
        },
      })
      const empty = await post('/v1/chat/completions', { model: m.chat, messages: [] })
      assert.equal(empty.status, 400)
      assert.deepEqual(await json(empty), {
        error: {
          message: "[] is too short - 'messages'",
          type: 'invalid_request_error',
          param: null,
          code: null,
        },
      })
    },
  )

  t('GET /v1/models lists the models; GET /v1/models/{model} retrieves one', async () => {
    const list = await json(await call('/v1/models'))
    assert.equal(list.object, 'list')
    const res = await call(`/v1/models/${encodeURIComponent(m.chat)}`)
    assert.equal(res.status, 200)
    const one = await json(res)
    assert.deepEqual(Object.keys(one).sort(), ['created', 'id', 'object', 'owned_by'])
    assert.equal(one.id, m.chat)
    assert.equal(one.owned_by, 'library')
    const missing = await call('/v1/models/sharedllm-contract-missing')
    assert.equal(missing.status, 404)
    assert.equal(((await json(missing)).error as Json).type, 'not_found_error')
  })

  if (server.maxQueue !== undefined) {
    t('more pending loads than OLLAMA_MAX_QUEUE are a 503 (sched.go ErrMaxQueue)', async () => {
      await unload(m.chat)
      const n = server.maxQueue! + 3
      const all = await Promise.all(
        Array.from({ length: n }, () =>
          chat(m.chat, { options: { num_ctx: 2048 + Math.floor(Math.random() * 4) } }),
        ),
      )
      const busy = all.filter((r) => r.status === 503)
      assert.ok(busy.length > 0, `one of ${n} parallel loads is refused`)
      assert.deepEqual(await json(busy[0]!), {
        error: 'server busy, please try again.  maximum pending requests exceeded',
      })
      await Promise.all(all.map((r) => r.arrayBuffer().catch(() => undefined)))
      await unload(m.chat)
    })
  }
}

/** `x` → `x:latest`; a name with a tag (after the last `/`) is kept. Empty stays empty. */
function withTag(name: string): string {
  if (!name) return name
  return name.slice(name.lastIndexOf('/') + 1).includes(':') ? name : `${name}:latest`
}

async function waitFor(check: () => Promise<boolean>, what: string, ms = 10_000) {
  const until = Date.now() + ms
  while (Date.now() < until) {
    if (await check()) return
    await new Promise((r) => setTimeout(r, 25))
  }
  assert.fail(`timed out waiting: ${what}`)
}

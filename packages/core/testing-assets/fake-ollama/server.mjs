// The stand-in Ollama HTTP server: routes, status codes and shapes of Ollama 0.33 (server/routes.go
// GenerateRoutes and the handlers it names, middleware/openai.go for /v1), plus failure switches and request
// recording. See README.md.
import { readFileSync } from 'node:fs'
import { createServer } from 'node:http'
import { isIP } from 'node:net'
import { hostname, networkInterfaces } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import {
  ChatCompletionRequest,
  ChatRequest,
  CompletionRequest,
  CreateRequest,
  DeleteRequest,
  decodeStruct,
  EmbeddingRequest,
  EmbedRequest,
  GenerateRequest,
  OpenAIEmbedRequest,
  PullRequest,
  parseOrdered,
  ShowRequest,
} from './gojson.mjs'
import { displayShortest, NameError, namespaceOf, parseName, resolveName } from './names.mjs'
import {
  chatChunk,
  chatFinishChunk,
  completionChunk,
  countWords,
  ERROR_TRIGGER,
  embedding,
  lastUserText,
  nativeChunk,
  nativeFinal,
  openaiError,
  openaiId,
  openaiUsage,
  promptTokens,
  replyPieces,
  thinkingPieces,
} from './replies.mjs'
import { createScheduler, createStore, ERR_MAX_QUEUE, loadConfig, vramDefaultContext } from './state.mjs'

const here = dirname(fileURLToPath(import.meta.url))
const JSON_TYPE = 'application/json; charset=utf-8'
const CLOUD_DISABLED = 'ollama cloud is disabled'

/** OLLAMA_HOST as envconfig.Host reads it: scheme://host:port, default 127.0.0.1:11434. */
export function parseHost(value) {
  let s = String(value ?? '')
    .trim()
    .replace(/^["']+|["']+$/g, '')
  let defaultPort = 11434
  const cut = s.indexOf('://')
  if (cut >= 0) {
    const scheme = s.slice(0, cut)
    s = s.slice(cut + 3)
    if (scheme === 'http') defaultPort = 80
    if (scheme === 'https') defaultPort = 443
  } else if (s === 'ollama.com') {
    s = 'ollama.com:443'
  }
  s = s.split('/')[0]
  let host = '127.0.0.1'
  let port = defaultPort
  const m = /^(?:\[([^\]]+)\]|([^:[\]]*)):(\d*)$/.exec(s)
  if (m) {
    host = m[1] ?? m[2]
    port = m[3] === '' ? Number.NaN : Number(m[3])
  } else if (s !== '') {
    host = s.replace(/^\[|\]$/g, '')
  }
  if (!Number.isInteger(port) || port < 0 || port > 65535) port = defaultPort
  return { host: host === '' ? '0.0.0.0' : host, port }
}

/** `normal` | `hang` | `slow:<ms>` | `crash-after:<ms>` | `queue-full` | `runner-crash` */
function parseMode(value) {
  const s = String(value ?? 'normal').trim() || 'normal'
  if (['normal', 'hang', 'queue-full', 'runner-crash'].includes(s)) return { name: s }
  const m = /^(slow|crash-after):(\d+)$/.exec(s)
  if (!m)
    throw new Error(
      `unknown mode ${JSON.stringify(s)}; use normal, hang, slow:<ms>, crash-after:<ms>, queue-full or runner-crash`,
    )
  return { name: m[1], ms: Number(m[2]) }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

class HttpError extends Error {
  constructor(status, message) {
    super(message)
    this.status = status
  }
}

export async function startServer({ host, port, version, env = {}, log = () => {} }) {
  const config = loadConfig(env, (m) => log('WARN', m))
  const fixtures = loadFixtures(env.FAKE_OLLAMA_FIXTURES || join(here, 'fixtures'))
  const store = createStore(config)
  const chunks = Number(env.FAKE_OLLAMA_CHUNKS ?? 0) || 0
  const chunkDelayMs = Number(env.FAKE_OLLAMA_CHUNK_DELAY_MS ?? 0) || 0
  const pullSteps = Number(env.FAKE_OLLAMA_PULL_STEPS ?? 4) || 4
  const recording = env.FAKE_OLLAMA_RECORD === '1'
  const recorded = []
  let mode = { name: 'normal' }
  let crashTimer
  let sched
  let ready = false
  let markReady
  const readyP = new Promise((r) => {
    markReady = r
  })

  const setMode = (value) => {
    mode = parseMode(value)
    clearTimeout(crashTimer)
    if (mode.name === 'crash-after') {
      crashTimer = setTimeout(() => {
        log('ERROR', 'simulated crash (FAKE_OLLAMA_MODE=crash-after)')
        process.exit(2)
      }, mode.ms)
    }
    log('INFO', `mode ${mode.name}${mode.ms === undefined ? '' : `:${mode.ms}`}`)
  }
  setMode(env.FAKE_OLLAMA_MODE)

  const server = createServer(async (req, res) => {
    try {
      await handle(req, res)
    } catch (err) {
      if (err instanceof HttpError) {
        const v1 = (req.url ?? '').startsWith('/v1/')
        if (!res.headersSent)
          sendJson(res, err.status, v1 ? openaiError(err.status, err.message) : { error: err.message })
        else res.end()
        return
      }
      log('ERROR', `handler failed: ${err?.stack ?? err}`)
      if (!res.headersSent) sendJson(res, 500, { error: String(err?.message ?? err) })
      else res.destroy()
    }
  })

  async function handle(req, res) {
    const url = new URL(req.url ?? '/', 'http://fake')
    const path = url.pathname
    const raw = await readBody(req)

    if (path.startsWith('/__fake/')) return fakeControl(req, res, path, raw)
    // server/routes.go Serve: the socket listens before GPU discovery, but HTTP is served only after it
    if (!ready) await readyP

    if (recording) recordRequest(req, url, raw)
    if (!hostAllowed(req.headers.host ?? '')) {
      res.writeHead(403)
      return res.end()
    }
    if (mode.name === 'hang') return // the socket stays open, nothing is ever written
    if (mode.name === 'slow') await sleep(mode.ms)

    const route = `${req.method} ${path}`
    if (path === '/' && (req.method === 'GET' || req.method === 'HEAD'))
      return sendText(res, 200, 'Ollama is running')
    if (path === '/api/version' && (req.method === 'GET' || req.method === 'HEAD')) {
      // gin writes the body for HEAD too; Node drops it
      res.writeHead(200, { 'content-type': JSON_TYPE })
      return res.end(fixtures.version(version))
    }
    if (path === '/api/tags' && (req.method === 'GET' || req.method === 'HEAD')) {
      if (fixtures.tagsOverride !== undefined) {
        res.writeHead(200, { 'content-type': JSON_TYPE })
        return res.end(fixtures.tagsOverride)
      }
      return sendJson(res, 200, { models: tags() })
    }
    if (route === 'GET /api/ps') return sendJson(res, 200, { models: ps() })
    if (route === 'GET /v1/models') return sendJson(res, 200, v1Models(), true)
    // gin's `/v1/models/:model` is one segment of the decoded path (UseRawPath is off: %2F is a slash)
    const v1Model = /^\/v1\/models\/([^/]+)$/.exec(safeDecode(path))
    if (v1Model && req.method === 'GET') return v1Retrieve(res, v1Model[1])

    const handlers = {
      'POST /api/show': [ShowRequest, show],
      'POST /api/pull': [PullRequest, pull],
      'DELETE /api/delete': [DeleteRequest, del],
      'POST /api/create': [CreateRequest, create],
      'POST /api/chat': [ChatRequest, (b) => generate('chat', b, res, req)],
      'POST /api/generate': [GenerateRequest, (b) => generate('generate', b, res, req)],
      'POST /api/embed': [EmbedRequest, (b) => embed(b, res)],
      'POST /api/embeddings': [EmbeddingRequest, (b) => embeddings(b, res)],
      'POST /v1/chat/completions': [ChatCompletionRequest, (b) => v1Chat(b, res, req)],
      'POST /v1/completions': [CompletionRequest, (b) => v1Completion(b, res, req)],
      'POST /v1/embeddings': [OpenAIEmbedRequest, (b) => v1Embeddings(b, res)],
    }
    const entry = handlers[route]
    if (!entry) {
      // gin with HandleMethodNotAllowed: a known path with another method is a 405
      const known =
        Object.keys(handlers).some((k) => k.split(' ')[1] === path) ||
        ['/', '/api/version', '/api/tags', '/api/ps', '/v1/models'].includes(path)
      if (known) return sendText(res, 405, '405 method not allowed')
      return sendText(res, 404, fixtures.notFoundPage)
    }
    const v1 = path.startsWith('/v1/')
    let body
    try {
      body = decodeBody(raw, entry[0], v1)
    } catch (err) {
      if (err instanceof HttpError) throw err
      throw new HttpError(400, err.message)
    }
    const out = entry[1](body, res)
    return out instanceof Promise ? await out : out
  }

  function decodeBody(raw, schema, v1) {
    if (raw.trim() === '') {
      // io.EOF: the native handlers say so, the /v1 middlewares pass Go's error text on
      throw new HttpError(400, v1 ? 'EOF' : 'missing request body')
    }
    let parsed
    try {
      JSON.parse(raw)
      parsed = parseOrdered(raw)
    } catch (err) {
      const at = /position (\d+)/.exec(err.message)
      const ch = at ? raw[Number(at[1])] : raw.trim()[0]
      throw new HttpError(400, `invalid character '${ch ?? ''}' looking for beginning of object key string`)
    }
    try {
      return decodeStruct(parsed, schema) ?? {}
    } catch (err) {
      if (err instanceof Error) throw new HttpError(400, err.message)
      throw err
    }
  }

  /**
   * routes.go allowedHostsMiddleware: bound to a loopback address, Ollama answers only requests whose Host is
   * an IP that is loopback, private, unspecified or its own, `localhost`, its hostname, or *.localhost,
   * *.local, *.internal (DNS-rebinding protection); others get an empty 403.
   */
  function hostAllowed(hostHeader) {
    const bound = server.address()?.address ?? ''
    if (!isLoopback(bound)) return true
    let host = hostHeader
    const m = /^\[([^\]]+)\](?::\d+)?$/.exec(host) ?? /^([^:]+):\d+$/.exec(host)
    if (m) host = m[1]
    if (isIP(host))
      return isLoopback(host) || isPrivate(host) || host === '0.0.0.0' || host === '::' || ownAddress(host)
    host = host.toLowerCase()
    if (host === '' || host === 'localhost' || host === hostname().toLowerCase()) return true
    return ['.localhost', '.local', '.internal'].some((tld) => host.endsWith(tld))
  }

  function fakeControl(req, res, path, raw) {
    if (path === '/__fake/requests') {
      if (req.method === 'DELETE') recorded.length = 0
      return sendJson(res, 200, recorded)
    }
    if (path === '/__fake/mode' && req.method === 'POST') {
      try {
        setMode(JSON.parse(raw || '{}').mode)
        return sendJson(res, 200, { mode })
      } catch (err) {
        return sendJson(res, 400, { error: err.message })
      }
    }
    if (path === '/__fake/runners') return sendJson(res, 200, sched ? sched.runners() : [])
    if (path === '/__fake/config')
      return sendJson(res, 200, { ...config, defaultNumCtx: sched?.defaultNumCtx })
    return sendText(res, 404, fixtures.notFoundPage)
  }

  function recordRequest(req, url, raw) {
    let body = null
    if (raw) {
      try {
        body = JSON.parse(raw)
      } catch {
        body = raw
      }
    }
    recorded.push({
      method: req.method,
      path: url.pathname,
      query: url.search,
      headers: req.headers,
      body,
      at: Date.now(),
    })
  }

  /** Resolves a request's model name; throws the HttpError the handler would send. */
  function lookup(raw, { onRequired, onInvalid = [400, 'invalid model name'], notFound }) {
    let r
    try {
      r = resolveName(raw, store.fullNames())
    } catch (err) {
      if (!(err instanceof NameError)) throw err
      if (err.kind === 'required') throw new HttpError(...onRequired)
      if (err.kind === 'invalid') throw new HttpError(...onInvalid)
      throw new HttpError(400, err.message)
    }
    const model = store.get(r.full)
    if (r.ref.source === 'cloud') return { ...r, model, cloud: true }
    if (!model) throw new HttpError(404, notFound(r))
    // an explicit :local never reaches a cloud model (server/routes.go)
    if (r.ref.source === 'local' && model.remote_host) throw new HttpError(404, notFound(r))
    return { ...r, model }
  }

  /**
   * server/images.go (Model).Capabilities: read from the GGUF (no pooling type: completion), the projector,
   * the template and the parser; a model of the catalog without its own list is a plain completion model.
   */
  function capabilities(model) {
    return model.capabilities ?? model.show?.capabilities ?? ['completion']
  }

  function modelDetails(m) {
    const d = m.details ?? {}
    return {
      parent_model: d.parent_model ?? '',
      format: d.format ?? 'gguf',
      family: d.family ?? '',
      families: d.families ?? null,
      parameter_size: d.parameter_size ?? '',
      quantization_level: d.quantization_level ?? '',
    }
  }

  function tags() {
    // server/model_list_cache.go: details gain the GGUF context/embedding length; capabilities are listed
    return store.list().map((m) => {
      // ...read from the GGUF layer: a safetensors (MLX) model has none, so its row carries neither
      const info = m.details?.format === 'safetensors' ? {} : (m.show?.model_info ?? {})
      const arch = info['general.architecture']
      const ctx = info[`${arch}.context_length`]
      const emb = info[`${arch}.embedding_length`]
      return {
        name: m.display,
        model: m.display,
        ...(m.remote_host ? { remote_model: m.remote_model, remote_host: m.remote_host } : {}),
        modified_at: m.modified_at,
        size: m.size,
        digest: m.digest,
        details: {
          ...modelDetails(m),
          ...(ctx ? { context_length: ctx } : {}),
          ...(emb ? { embedding_length: emb } : {}),
        },
        capabilities: capabilities(m),
      }
    })
  }

  function ps() {
    return sched.running().map((r) => ({
      name: r.model.display,
      model: r.model.display,
      size: r.sizeTotal,
      digest: r.model.digest,
      details: modelDetails(r.model),
      expires_at: new Date(Math.min(r.expiresAt, 8.64e15)).toISOString(),
      size_vram: r.sizeVram,
      context_length: r.contextLength,
    }))
  }

  /** openai/openai.go ToListCompletion: id is the listed name, created its mtime, owned_by its namespace. */
  function v1Models() {
    return {
      object: 'list',
      data: store.list().map((m) => ({
        id: m.display,
        object: 'model',
        created: Math.floor(Date.parse(m.modified_at) / 1000),
        owned_by: namespaceOf(m.display),
      })),
    }
  }

  function v1Retrieve(res, name) {
    // RetrieveMiddleware + ShowHandler: errors come back in the OpenAI shape
    const r = lookup(name, {
      onRequired: [400, 'model is required'],
      notFound: (x) => `model '${displayShortest(x.name)}' not found`,
    })
    if (r.cloud)
      return cloudDisabledOr(res, 'remote model details are unavailable', true, () => {
        sendJson(res, 200, { id: name, object: 'model', created: 0, owned_by: namespaceOf(r.ref.base) }, true)
      })
    return sendJson(
      res,
      200,
      {
        id: name,
        object: 'model',
        created: Math.floor(Date.parse(r.model.modified_at) / 1000),
        owned_by: r.name.namespace,
      },
      true,
    )
  }

  /**
   * server/cloud_proxy.go proxyCloudRequestWithPath: with cloud disabled (envconfig.NoCloud) a 403 whose
   * message is internal/cloud/policy.go DisabledError ("ollama cloud is disabled: <operation>"); otherwise `fn`
   * answers, as ollama.com would through the proxy.
   */
  function cloudDisabledOr(res, operation, v1, fn) {
    if (config.noCloud) {
      const message = `${CLOUD_DISABLED}: ${operation}`
      return sendJson(res, 403, v1 ? openaiError(403, message) : { error: message }, v1)
    }
    return fn()
  }

  /**
   * routes.go ShowHandler: the name is canonicalised (getExistingName, then DisplayShortest) before the
   * lookup, so a missing model is named with its tag: `model 'x:latest' not found`.
   */
  function show(b, res) {
    const requested = b.model || b.name
    if (!requested) throw new HttpError(400, 'model is required')
    const r = lookup(requested, {
      onRequired: [400, 'model is required'],
      notFound: (x) =>
        x.ref.source === 'local' && store.get(x.full)
          ? `model '${x.ref.original}' not found`
          : `model '${displayShortest(x.name)}' not found`,
    })
    if (r.cloud) {
      return cloudDisabledOr(res, 'remote model details are unavailable', false, () => {
        const cloud = store.catalog.find((e) => e.remote_model === r.ref.base)
        if (!cloud) throw new HttpError(404, `model '${r.ref.base}' not found`)
        sendJson(res, 200, {
          details: modelDetails(cloud),
          model_info: cloud.show.model_info,
          capabilities: capabilities(cloud),
          modified_at: '0001-01-01T00:00:00Z',
        })
      })
    }
    const m = r.model
    if (m.remote_host && config.noCloud) {
      return sendJson(res, 403, { error: `${CLOUD_DISABLED}: remote model details are unavailable` })
    }
    return sendJson(res, 200, showResponse(m, b.verbose === true))
  }

  function showResponse(m, verbose) {
    const s = m.show ?? {}
    const modelInfo = { ...(s.model_info ?? {}) }
    if (verbose) {
      // getModelData with verbose: every array comes back in full (non-verbose: any non-empty array is null)
      for (const [k, v] of Object.entries(modelInfo)) {
        if (v !== null) continue
        if (m.verbose_arrays?.[k]) modelInfo[k] = m.verbose_arrays[k]
        else if (/^tokenizer\.ggml\.(tokens|scores|token_type)$/.test(k) && m.vocab) {
          // the stand-in has no GGUF: tokenizer arrays have the real length and placeholder values
          modelInfo[k] = Array.from({ length: m.vocab }, (_, i) =>
            k.endsWith('tokens') ? `<tok${i}>` : k.endsWith('scores') ? 0 : 1,
          )
        } else modelInfo[k] = []
      }
    }
    const mlx = m.details?.format === 'safetensors'
    const out = {}
    if (s.license) out.license = s.license
    // routes.go GetModelInfo: an MLX model's Modelfile is FROM its own name, without the "replace FROM" note
    out.modelfile =
      s.modelfile ??
      (mlx
        ? `# Modelfile generated by "ollama show"\nFROM ${m.display}\n`
        : `# Modelfile generated by "ollama show"\n# To build a new Modelfile based on this, replace FROM with:\n# FROM ${m.display}\n\nFROM ${m.display}\n`)
    if (s.parameters) out.parameters = s.parameters
    if (s.template) out.template = s.template
    if (s.system) out.system = s.system
    // routes.go GetModelInfo: for a safetensors LLM the family and parameter size come from its config.json
    // (x/server/show.go GetSafetensorsLLMInfo), the quantization from the tensor headers or torch_dtype
    out.details = mlx && m.show_details ? { ...modelDetails(m), ...m.show_details } : modelDetails(m)
    if (m.remote_host) {
      out.remote_model = m.remote_model
      out.remote_host = m.remote_host
    }
    out.model_info = modelInfo
    if (s.projector_info) out.projector_info = s.projector_info
    // safetensors: tensors only with verbose (GetSafetensorsTensorInfo); the stand-in has none to send
    if (s.tensors && !m.remote_host && (!mlx || verbose)) out.tensors = s.tensors
    out.capabilities = capabilities(m)
    out.modified_at = m.modified_at
    return out
  }

  async function pull(b, res) {
    const requested = b.model || b.name
    let r
    try {
      r = resolveName(requested ?? '', store.fullNames())
    } catch (err) {
      // writeModelRefParseError: only the :local/:cloud conflict has its own message
      throw new HttpError(400, err.kind === 'conflict' ? err.message : 'invalid model name')
    }
    // modelref.NormalizePullName: `x:cloud` pulls the cloud stub `x-cloud` / `x:cloud`
    let full = r.full
    if (r.ref.source === 'cloud') {
      const base = parseName(r.ref.base)
      full = `${base.host}/${base.namespace}/${base.model}:${r.ref.base.includes(':') ? `${base.tag}-cloud` : 'cloud'}`
    }
    const entry = String(requested).includes('error') ? undefined : store.registryEntry(full)
    const lines = entry ? pullLines(fixtures, pullSteps) : fixtures.pullError
    const finish = () => {
      if (entry) store.install(entry, full)
    }
    if (b.stream === false) {
      // waitForStream: nothing is written until the pull has finished
      for (let i = 0; i < lines.length; i++) await sleep(chunkDelayMs)
      const last = lines.at(-1)
      if (last.error) return sendJson(res, 500, { error: last.error })
      finish()
      return sendJson(res, 200, { status: 'success' })
    }
    if (await streamLines(res, lines)) finish()
  }

  /**
   * server/routes.go DeleteHandler: parseNormalizePullModelRef, then the manifest and its layers are removed.
   * It never calls the scheduler: a loaded runner of the deleted model keeps running until it expires.
   */
  function del(b, res) {
    const requested = b.model || b.name
    let r
    try {
      r = resolveName(requested ?? '', store.fullNames())
    } catch (err) {
      if (err.kind === 'required') throw new HttpError(400, 'model is required')
      throw new HttpError(400, `name ${JSON.stringify(requested)} is invalid`)
    }
    const m = store.get(r.full)
    if (!m) throw new HttpError(404, `model '${requested}' not found`)
    store.remove(r.full)
    res.writeHead(200)
    return res.end()
  }

  /**
   * server/create.go CreateHandler: the name is `model`, else the deprecated `name`; one that does not parse
   * (none at all included) is a 400 "invalid model name", checked before `from`. The stand-in creates only
   * from an installed model (no files, no quantizing).
   */
  async function create(b, res) {
    const requested = b.model || b.name || ''
    let target
    try {
      target = resolveName(requested, [])
    } catch {
      throw new HttpError(400, 'invalid model name')
    }
    if (!b.from) throw new HttpError(400, "neither 'from' or 'files' was specified")
    const from = lookup(b.from, {
      onRequired: [400, 'model is required'],
      notFound: () => `model '${b.from}' not found`,
    })
    store.derive(from.model, target.full, b.parameters)
    const lines = [{ status: 'using existing layer' }, { status: 'writing manifest' }, { status: 'success' }]
    if (b.stream === false) return sendJson(res, 200, { status: 'success' })
    return streamLines(res, lines)
  }

  function signalOf(req, res) {
    const ac = new AbortController()
    res.on('close', () => {
      if (!res.writableFinished) ac.abort()
    })
    req.on('aborted', () => ac.abort())
    return ac.signal
  }

  /** Schedules a runner; a full queue is Ollama's 503 (handleScheduleError). */
  async function acquire(model, b, signal) {
    if (mode.name === 'queue-full') throw new HttpError(503, ERR_MAX_QUEUE)
    try {
      return await sched.acquire(model, b.options, b.keep_alive, signal)
    } catch (err) {
      throw new HttpError(err.status ?? 500, err.message)
    }
  }

  /** Runs the reply through the model's runner process, piece by piece. */
  async function* runPieces(lease, pieces, signal) {
    const { runner } = lease
    const resp = await fetch(`http://127.0.0.1:${runner.port}/completion`, {
      method: 'POST',
      body: JSON.stringify({
        pieces,
        tokensPerSecond: config.tokensPerSecond,
        pieceDelayMs: chunkDelayMs,
        crashAfter: mode.name === 'runner-crash' ? Math.min(2, pieces.length - 1) : -1,
      }),
      signal,
    }).catch(() => {
      throw new HttpError(500, 'an error was encountered while running the model: unexpected EOF')
    })
    const reader = resp.body.getReader()
    const dec = new TextDecoder()
    let buf = ''
    let gotDone = false
    try {
      for (;;) {
        const { value, done } = await reader.read()
        if (done) break
        buf += dec.decode(value, { stream: true })
        let nl = buf.indexOf('\n')
        while (nl >= 0) {
          const line = JSON.parse(buf.slice(0, nl))
          buf = buf.slice(nl + 1)
          if (line.done) gotDone = true
          else yield line.content
          nl = buf.indexOf('\n')
        }
      }
    } catch {
      if (signal.aborted) return
      throw new HttpError(500, 'an error was encountered while running the model: unexpected EOF')
    }
    if (!gotDone && !signal.aborted)
      throw new HttpError(500, 'an error was encountered while running the model: unexpected EOF')
  }

  /**
   * GenerateHandler / ChatHandler. `emit` receives every native response object in order (the /v1
   * middlewares wrap it); returns nothing once it has answered.
   */
  async function native(kind, b, req, res, emit) {
    const startedAt = performance.now()
    const modelName = b.model ?? ''
    const r = lookup(modelName, {
      // GenerateHandler sends a missing model through its not-found fallback; ChatHandler says it is required
      onRequired: kind === 'chat' ? [400, 'model is required'] : [404, `model '' not found`],
      notFound: () => `model '${modelName}' not found`,
    })
    const empty = kind === 'chat' ? !b.messages || b.messages.length === 0 : !b.prompt
    if (r.cloud || r.model?.remote_host) {
      const remote = r.model?.remote_host
        ? { remote_model: r.model.remote_model, remote_host: r.model.remote_host }
        : {}
      if (config.noCloud) throw new HttpError(403, `${CLOUD_DISABLED}: remote model is unavailable`)
      if (empty && b.keep_alive === 0 && r.model)
        return emit.final(nativeFinal(kind, modelName, { doneReason: 'unload', extra: remote }))
      // the stand-in plays ollama.com: it answers like a model, and nothing is loaded locally
      const input = kind === 'chat' ? lastUserText(b.messages) : (b.prompt ?? '')
      const pieces = replyPieces(input, chunks)
      for (const p of pieces) emit.chunk(nativeChunk(kind, modelName, p, false, remote))
      return emit.final(
        nativeFinal(kind, modelName, {
          prompt: promptTokens(b),
          evalCount: pieces.length,
          startedAt,
          extra: remote,
        }),
        {
          content: pieces.join(''),
          thinking: '',
        },
      )
    }
    const m = r.model
    if (empty && b.keep_alive === 0) {
      sched.expire(m)
      return emit.final(nativeFinal(kind, modelName, { doneReason: 'unload' }))
    }
    const caps = capabilities(m)
    let think = b.think
    if (caps.includes('thinking')) {
      // routes.go: a model with the thinking capability thinks unless the request says think:false
      if (think === undefined) think = config.thinkDefault !== 'off'
    } else if (think === true || typeof think === 'string') {
      throw new HttpError(400, `${JSON.stringify(modelName)} does not support thinking`)
    }
    if (!caps.includes('completion'))
      throw new HttpError(400, `${JSON.stringify(modelName)} does not support ${kind}`)
    const signal = signalOf(req, res)
    const lease = await acquire(m, b, signal)
    const loadedAt = performance.now()
    try {
      if (empty) return emit.final(nativeFinal(kind, modelName, { doneReason: 'load' }))
      const input = kind === 'chat' ? lastUserText(b.messages) : (b.prompt ?? '')
      const thoughts = think && think !== false ? thinkingPieces(input) : []
      const pieces = replyPieces(input, chunks)
      const all = [
        ...thoughts.map((t) => ({ t, thinking: true })),
        ...pieces.map((t) => ({ t, thinking: false })),
      ]
      let i = 0
      let content = ''
      let thinking = ''
      try {
        for await (const piece of runPieces(
          lease,
          all.map((x) => x.t),
          signal,
        )) {
          const item = all[i++]
          if (input.includes(ERROR_TRIGGER) && i > 2) {
            return emit.error(500, fixtures.errorMidStream.at(-1).error)
          }
          if (item.thinking) thinking += piece
          else content += piece
          emit.chunk(nativeChunk(kind, modelName, piece, item.thinking))
        }
      } catch (err) {
        // streamResponse: an error after the first chunk is one more line, before it a status and a body
        if (err instanceof HttpError) return emit.error(err.status, err.message)
        throw err
      }
      if (input.includes(ERROR_TRIGGER)) return emit.error(500, fixtures.errorMidStream.at(-1).error)
      return emit.final(
        nativeFinal(kind, modelName, { prompt: promptTokens(b), evalCount: all.length, startedAt, loadedAt }),
        { content, thinking },
      )
    } finally {
      lease.done()
    }
  }

  /** The native writer: NDJSON as it comes, or one object at the end (stream:false). */
  function nativeWriter(res, stream) {
    const chunksSeen = []
    return {
      chunk(c) {
        if (stream) writeLine(res, c)
        else chunksSeen.push(c)
      },
      final(f, acc) {
        if (stream) {
          writeLine(res, f)
          return res.end()
        }
        // stream:false: one object with everything the chunks carried (routes.go accumulates them)
        if (acc) {
          if (f.message)
            f.message = {
              ...f.message,
              content: acc.content,
              ...(acc.thinking ? { thinking: acc.thinking } : {}),
            }
          else
            Object.assign(f, { response: acc.content, ...(acc.thinking ? { thinking: acc.thinking } : {}) })
        }
        return sendJson(res, 200, f)
      },
      error(status, message) {
        if (stream && res.headersSent) {
          writeLine(res, { error: message })
          return res.end()
        }
        return sendJson(res, status, { error: message })
      },
    }
  }

  function writeLine(res, obj) {
    if (!res.headersSent) res.writeHead(200, { 'content-type': 'application/x-ndjson' })
    if (!res.destroyed) res.write(`${JSON.stringify(obj)}\n`)
  }

  async function generate(kind, b, res, req) {
    // streamResponse writes headers with the first chunk; stream:false waits for the whole answer
    return native(kind, b, req, res, nativeWriter(res, b.stream !== false))
  }

  /**
   * server/routes.go EmbedHandler up to scheduleRunner: no model (modelref.ErrModelRequired) is
   * writeModelRefParseError's fallback, 404 `model '' not found`; a model that is not installed is getModel's
   * os.ErrNotExist through handleScheduleError, 404 `model "x" not found, try pulling it first`; an empty string
   * input is no input (`if len(i) > 0`). /v1/embeddings (middleware/openai.go EmbeddingsMiddleware) runs the
   * same handler. Returns the resolved model and the inputs, or `cloud` for a :cloud model.
   */
  function embedRequest(b) {
    const model = b.model ?? ''
    let r
    let missing
    try {
      r = lookup(model, {
        onRequired: [404, `model '${model}' not found`],
        notFound: () => `model ${JSON.stringify(model)} not found, try pulling it first`,
      })
    } catch (err) {
      // the name parses: the input is checked before the model is looked up
      if (!(err instanceof HttpError) || model === '' || err.status !== 404) throw err
      missing = err
    }
    let inputs
    if (typeof b.input === 'string') inputs = b.input.length > 0 ? [b.input] : []
    else if (Array.isArray(b.input) && b.input.every((x) => typeof x === 'string')) inputs = b.input
    else if (b.input === undefined || b.input === null) inputs = []
    else if (!r?.cloud) throw new HttpError(400, 'invalid input type')
    if (missing) throw missing
    return { r, inputs }
  }

  /** The stand-in plays ollama.com for a :cloud embed (proxyCloudJSONRequest), unless cloud is disabled. */
  function embedVectors(model, inputs) {
    const dims = model?.embedding_dim ?? 8
    return inputs.map((s) => embedding(s, dims))
  }

  function embedTokens(inputs) {
    return inputs.reduce((n, s) => n + Math.max(1, countWords(s)), 0)
  }

  async function embed(b, res) {
    const startedAt = performance.now()
    const { r, inputs } = embedRequest(b)
    const answer = (model) =>
      sendJson(res, 200, {
        model: b.model,
        embeddings: embedVectors(model, inputs),
        ...(inputs.length === 0
          ? {}
          : {
              total_duration: Math.round((performance.now() - startedAt) * 1e6),
              load_duration: 1_334_875,
              prompt_eval_count: embedTokens(inputs),
            }),
      })
    // routes.go EmbedHandler: a :cloud model goes to proxyCloudJSONRequest (403 only when cloud is disabled)
    if (r.cloud) return cloudDisabledOr(res, 'remote model is unavailable', false, () => answer(undefined))
    const lease = await acquire(r.model, b, new AbortController().signal)
    try {
      return answer(r.model)
    } finally {
      lease.done()
    }
  }

  /**
   * server/routes.go EmbeddingsHandler: no model is "model is required" (writeModelRefParseError's fallback),
   * a missing one handleScheduleError's 404; an empty prompt only loads the model.
   */
  async function embeddings(b, res) {
    const model = b.model ?? ''
    const r = lookup(model, {
      onRequired: [400, 'model is required'],
      notFound: () => `model ${JSON.stringify(model)} not found, try pulling it first`,
    })
    const prompt = String(b.prompt ?? '')
    const answer = (m) => sendJson(res, 200, { embedding: prompt === '' ? [] : embedVectors(m, [prompt])[0] })
    if (r.cloud) return cloudDisabledOr(res, 'remote model is unavailable', false, () => answer(undefined))
    const lease = await acquire(r.model, b, new AbortController().signal)
    try {
      return answer(r.model)
    } finally {
      lease.done()
    }
  }

  /**
   * openai/openai.go FromChatRequest + thinkFromReasoningEffort: `reasoning.effort` (else `reasoning_effort`)
   * becomes the think value; OpenAI's tiers beyond Ollama's are clamped, an unknown one is a 400.
   */
  function thinkFromReasoningEffort(effort) {
    if (effort === '') return undefined
    if (effort === 'none') return false
    if (effort === 'minimal') return 'low'
    if (['low', 'medium', 'high', 'max'].includes(effort)) return effort
    if (effort === 'xhigh' || effort === 'ultra') return 'max'
    throw new HttpError(
      400,
      `invalid reasoning value: ${JSON.stringify(effort)} (must be "minimal", "low", "medium", "high", "xhigh", "ultra", "max", or "none")`,
    )
  }

  /** ChatMiddleware + ChatWriter (middleware/openai.go). */
  async function v1Chat(b, res, req) {
    if (!Array.isArray(b.messages) || b.messages.length === 0)
      throw new HttpError(400, "[] is too short - 'messages'")
    const meta = { id: openaiId('chatcmpl'), created: Math.floor(Date.now() / 1000), model: b.model }
    const stream = b.stream === true
    const includeUsage = b.stream_options?.include_usage === true
    let firstSent = false
    const writer = {
      chunk(c) {
        if (!stream) return
        const delta = c.message.thinking
          ? { content: '', reasoning: c.message.thinking }
          : { content: c.message.content }
        sse(res, chatChunk(meta, delta, !firstSent))
        firstSent = true
      },
      final(f, acc) {
        if (!stream) {
          const message = {
            role: 'assistant',
            content: acc?.content ?? '',
            ...(acc?.thinking ? { reasoning: acc.thinking } : {}),
          }
          return sendJson(
            res,
            200,
            {
              id: meta.id,
              object: 'chat.completion',
              created: meta.created,
              model: b.model,
              system_fingerprint: 'fp_ollama',
              choices: [{ index: 0, message, finish_reason: f.done_reason || null }],
              usage: openaiUsage(f.prompt_eval_count ?? 0, f.eval_count ?? 0),
            },
            true,
          )
        }
        // a wholly empty completion still opens with a role chunk
        if (!firstSent) sse(res, chatChunk(meta, { content: '' }, true))
        sse(res, chatFinishChunk(meta, f.done_reason || 'stop'))
        if (includeUsage) {
          const u = {
            ...chatFinishChunk(meta, f.done_reason || 'stop'),
            choices: [],
            usage: openaiUsage(f.prompt_eval_count ?? 0, f.eval_count ?? 0),
          }
          sse(res, u)
        }
        res.end('data: [DONE]\n\n')
      },
      error: v1Error(res),
    }
    const think = thinkFromReasoningEffort(
      b.reasoning ? (b.reasoning.effort ?? '') : (b.reasoning_effort ?? ''),
    )
    return native(
      'chat',
      {
        model: b.model,
        messages: b.messages,
        think,
        options: b.max_tokens ? { num_predict: b.max_tokens } : undefined,
      },
      req,
      res,
      writer,
    )
  }

  /** CompletionsMiddleware + CompleteWriter: with include_usage every chunk carries a zero usage. */
  async function v1Completion(b, res, req) {
    const meta = { id: openaiId('cmpl'), model: b.model }
    const stream = b.stream === true
    const includeUsage = b.stream_options?.include_usage === true
    const writer = {
      chunk(c) {
        // a thinking piece is a chunk with empty text (CompleteWriter only reads `response`)
        if (stream) sse(res, completionChunk(meta, c.response, null, includeUsage))
      },
      final(f, acc) {
        if (!stream) {
          return sendJson(
            res,
            200,
            {
              id: meta.id,
              object: 'text_completion',
              created: Math.floor(Date.now() / 1000),
              model: b.model,
              system_fingerprint: 'fp_ollama',
              choices: [{ text: acc?.content ?? '', index: 0, finish_reason: f.done_reason || null }],
              usage: openaiUsage(f.prompt_eval_count ?? 0, f.eval_count ?? 0),
            },
            true,
          )
        }
        sse(res, completionChunk(meta, '', f.done_reason || null, includeUsage))
        if (includeUsage) {
          const last = completionChunk(meta, '', null, false)
          sse(res, { ...last, choices: [], usage: openaiUsage(f.prompt_eval_count ?? 0, f.eval_count ?? 0) })
        }
        res.end('data: [DONE]\n\n')
      },
      error: v1Error(res),
    }
    return native(
      'generate',
      {
        model: b.model,
        prompt: b.prompt ?? '',
        options: b.max_tokens ? { num_predict: b.max_tokens } : undefined,
      },
      req,
      res,
      writer,
    )
  }

  /**
   * middleware/openai.go EmbeddingsMiddleware + EmbedWriter: encoding_format float|base64, "" is [""], no or
   * an empty input list is 400 "invalid input"; then EmbedHandler (embedRequest) with OpenAI-shaped errors.
   */
  async function v1Embeddings(b, res) {
    if (b.encoding_format && !['float', 'base64'].includes(b.encoding_format.toLowerCase())) {
      throw new HttpError(
        400,
        `Invalid value for 'encoding_format' = ${b.encoding_format}. Supported values: ['float', 'base64'].`,
      )
    }
    let input = b.input
    if (input === '') input = ['']
    if (input === undefined || (Array.isArray(input) && input.length === 0))
      throw new HttpError(400, 'invalid input')
    // EmbeddingsMiddleware re-encodes the request as an api.EmbedRequest for EmbedHandler
    const { r, inputs } = embedRequest({ ...b, input })
    const answer = (model) => {
      const tokens = embedTokens(inputs)
      return sendJson(
        res,
        200,
        {
          object: 'list',
          data: embedVectors(model, inputs).map((v, index) => {
            const e =
              b.encoding_format?.toLowerCase() === 'base64'
                ? Buffer.from(new Float32Array(v).buffer).toString('base64')
                : v
            return { object: 'embedding', embedding: e, index }
          }),
          model: b.model,
          usage: { prompt_tokens: tokens, total_tokens: tokens },
        },
        true,
      )
    }
    if (r.cloud) return cloudDisabledOr(res, 'remote model is unavailable', true, () => answer(undefined))
    const lease = await acquire(r.model, b, new AbortController().signal)
    try {
      return answer(r.model)
    } finally {
      lease.done()
    }
  }

  /** Writes NDJSON lines with the configured delay; false when the client went away first. */
  async function streamLines(res, lines) {
    res.writeHead(200, { 'content-type': 'application/x-ndjson' })
    for (let i = 0; i < lines.length; i++) {
      if (i > 0 && chunkDelayMs > 0) await sleep(chunkDelayMs)
      if (res.destroyed) return false
      res.write(`${JSON.stringify(lines[i])}\n`)
    }
    res.end()
    return true
  }

  await new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => {
      server.off('error', reject)
      resolve()
    })
  })
  const addr = server.address()
  const shown = addr.family === 'IPv6' ? `[${addr.address}]:${addr.port}` : `${addr.address}:${addr.port}`
  log('INFO', `Listening on ${shown} (version ${version})`)

  // GPU discovery, then the VRAM tier decides the default context (server/routes.go Serve)
  const totalVram = config.vramBytes
  void (async () => {
    if (config.discoveryMs > 0) {
      log('INFO', 'discovering available GPUs...')
      await sleep(config.discoveryMs)
    }
    log(
      'INFO',
      `inference compute id=GPU-fake library=CUDA total="${(totalVram / 1024 ** 3).toFixed(1)} GiB"`,
    )
    const defaultNumCtx = vramDefaultContext(Math.max(0, totalVram - config.gpuOverhead))
    sched = createScheduler({
      config,
      store,
      log,
      runnerBin: join(here, 'runner.mjs'),
      totalVram,
      defaultNumCtx,
    })
    sched.defaultNumCtx = defaultNumCtx
    log(
      'INFO',
      `vram-based default context total_vram="${(totalVram / 1024 ** 3).toFixed(1)} GiB" default_num_ctx=${defaultNumCtx}`,
    )
    ready = true
    markReady()
  })()
  server.unloadAll = () => sched?.unloadAll()
  return server
}

function isLoopback(ip) {
  return /^127\./.test(ip) || ip === '::1' || ip === '::ffff:127.0.0.1'
}

function isPrivate(ip) {
  return /^(10\.|192\.168\.|172\.(1[6-9]|2\d|3[01])\.)/.test(ip) || /^f[cd]/i.test(ip)
}

function ownAddress(ip) {
  return Object.values(networkInterfaces())
    .flat()
    .some((i) => i?.address === ip)
}

/** The captured head, then completed counts for its layer in `steps`, then the captured tail. */
function pullLines(fixtures, steps) {
  const [manifest, ...head] = fixtures.pullHead
  const layer = head[0]
  const progress = Array.from({ length: steps }, (_, i) => ({
    ...layer,
    completed: Math.round((layer.total * (i + 1)) / steps),
  }))
  return [manifest, ...head, ...progress, ...fixtures.pullTail]
}

function loadFixtures(dir) {
  const text = (name) => readFileSync(join(dir, name), 'utf8')
  const lines = (s) =>
    s
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map((l) => JSON.parse(l))
  const captured = text('api-version-local-0.10.1.json')
  let capturedVersion
  try {
    capturedVersion = JSON.parse(captured).version
  } catch {}
  return {
    // the captured bytes (verbatim, even when a test broke them) for the captured version; gin's c.JSON otherwise
    version: (v) =>
      capturedVersion === undefined || capturedVersion === v ? captured : JSON.stringify({ version: v }),
    // FAKE_OLLAMA_FIXTURES replaces the model list with that folder's capture, verbatim
    tagsOverride: dir === join(here, 'fixtures') ? undefined : text('api-tags-16-models-local.json'),
    pullHead: lines(text('api-pull-stream-head-fragment.txt')),
    pullTail: lines(text('api-pull-stream-tail-fragment.txt')),
    pullError: lines(text('api-pull-stream-error-in-stream.txt')),
    errorMidStream: lines(text('docs-api-error-mid-stream.txt')),
    notFoundPage: text('api-unknown-path-404-plaintext.txt'),
  }
}

function safeDecode(path) {
  try {
    return decodeURIComponent(path)
  } catch {
    return path
  }
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const parts = []
    req.on('data', (c) => parts.push(c))
    req.on('end', () => resolve(Buffer.concat(parts).toString('utf8')))
    req.on('error', reject)
  })
}

/** gin's c.JSON; the /v1 writers use json.Encoder, which ends the body with a newline. */
function sendJson(res, status, value, encoder = false) {
  res.writeHead(status, { 'content-type': encoder ? 'application/json' : JSON_TYPE })
  res.end(JSON.stringify(value) + (encoder ? '\n' : ''))
}

/**
 * middleware/openai.go BaseWriter.writeError: before the first chunk a status and an OpenAI error body. After
 * it, Ollama json-encodes the error straight onto the stream (no SSE `data:` framing, the status already 200);
 * the stand-in sends it as one more `data:` event.
 */
function v1Error(res) {
  return (status, message) => {
    if (res.headersSent) {
      res.write(`data: ${JSON.stringify(openaiError(status, message))}\n\n`)
      return res.end()
    }
    return sendJson(res, status, openaiError(status, message), true)
  }
}

function sse(res, obj) {
  if (!res.headersSent) res.writeHead(200, { 'content-type': 'text/event-stream' })
  if (!res.destroyed) res.write(`data: ${JSON.stringify(obj)}\n\n`)
}

function sendText(res, status, text) {
  res.writeHead(status, { 'content-type': 'text/plain' })
  res.end(text)
}

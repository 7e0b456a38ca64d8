// The fake Ollama HTTP server: routes, failure modes and request recording. See README.md.
import { createServer } from 'node:http'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import {
  ERROR_TRIGGER,
  embedding,
  lastUserText,
  nativeChunk,
  nativeFinal,
  openaiChunk,
  openaiError,
  openaiId,
  openaiUsage,
  promptTokens,
  replyPieces,
} from './replies.mjs'
import { createState, loadFixtures, parseKeepAlive } from './state.mjs'

const here = dirname(fileURLToPath(import.meta.url))
const JSON_TYPE = 'application/json; charset=utf-8'

/** OLLAMA_HOST as Ollama reads it: `host`, `host:port`, `:port`, `http://host:port`, `[::1]:port`. */
export function parseHost(value) {
  let s = (value ?? '').trim() || '127.0.0.1:11434'
  s = s.replace(/^https?:\/\//, '').replace(/\/+$/, '')
  const m = /^(?:\[([^\]]+)\]|([^:]*))(?::(\d+))?$/.exec(s)
  if (!m) throw new Error(`invalid OLLAMA_HOST ${JSON.stringify(value)}`)
  const host = m[1] ?? (m[2] || '127.0.0.1')
  const port = m[3] === undefined ? 11434 : Number(m[3])
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new Error(`invalid port in OLLAMA_HOST ${value}`)
  return { host, port }
}

/** `normal` | `hang` | `slow:<ms>` | `crash-after:<ms>` */
function parseMode(value) {
  const s = String(value ?? 'normal').trim() || 'normal'
  if (s === 'normal' || s === 'hang') return { name: s }
  const m = /^(slow|crash-after):(\d+)$/.exec(s)
  if (!m)
    throw new Error(`unknown mode ${JSON.stringify(s)}; use normal, hang, slow:<ms> or crash-after:<ms>`)
  return { name: m[1], ms: Number(m[2]) }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

export async function startServer({ host, port, version, env = {}, log = () => {} }) {
  const fixtures = loadFixtures(env.FAKE_OLLAMA_FIXTURES || join(here, 'fixtures'))
  const state = createState(fixtures)
  const chunkDelayMs = Number(env.FAKE_OLLAMA_CHUNK_DELAY_MS ?? 0) || 0
  const chunks = Number(env.FAKE_OLLAMA_CHUNKS ?? 0) || 0
  const pullSteps = Number(env.FAKE_OLLAMA_PULL_STEPS ?? 4) || 4
  const recording = env.FAKE_OLLAMA_RECORD === '1'
  const recorded = []
  let mode = { name: 'normal' }
  let crashTimer

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
      log('ERROR', `handler failed: ${err?.stack ?? err}`)
      if (!res.headersSent) sendJson(res, 500, { error: String(err?.message ?? err) })
      else res.destroy()
    }
  })

  async function handle(req, res) {
    const url = new URL(req.url ?? '/', 'http://fake')
    const raw = await readBody(req)
    const path = url.pathname

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

    if (recording) {
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
        path,
        query: url.search,
        headers: req.headers,
        body,
        at: Date.now(),
      })
    }

    if (mode.name === 'hang') return // the socket stays open, nothing is ever written
    if (mode.name === 'slow') await sleep(mode.ms)

    const route = `${req.method} ${path}`
    if ((req.method === 'GET' || req.method === 'HEAD') && path === '/')
      return sendText(res, 200, 'Ollama is running')
    if (route === 'GET /api/version' || route === 'HEAD /api/version') {
      // The captured bytes, verbatim (no trailing newline).
      res.writeHead(200, { 'content-type': JSON_TYPE })
      return res.end(fixtures.version)
    }
    if (route === 'GET /api/tags') return sendJson(res, 200, { models: state.list() })
    if (route === 'GET /api/ps') return sendJson(res, 200, { models: state.running() })

    const jsonRoutes = {
      'POST /api/show': show,
      'POST /api/pull': pull,
      'DELETE /api/delete': del,
      'POST /api/chat': (b) => generate('chat', b),
      'POST /api/generate': (b) => generate('generate', b),
      'POST /api/embed': (b) => embed('embed', b),
      'POST /api/embeddings': (b) => embed('embeddings', b),
      'POST /v1/chat/completions': (b) => openai('chat', b),
      'POST /v1/completions': (b) => openai('completion', b),
      'POST /v1/embeddings': openaiEmbeddings,
    }
    if (route === 'GET /v1/models') {
      return sendJson(res, 200, {
        object: 'list',
        data: state.list().map((m) => ({
          id: m.name,
          object: 'model',
          created: Math.floor(Date.parse(m.modified_at) / 1000) || 0,
          owned_by: m.name.includes('/') ? m.name.split('/')[0] : 'library',
        })),
      })
    }
    const handler = jsonRoutes[route]
    if (!handler) return sendText(res, 404, fixtures.notFoundPage)

    let body
    try {
      body = raw.trim() === '' ? {} : JSON.parse(raw)
    } catch (err) {
      const at = /position (\d+)/.exec(err.message)
      const ch = at ? raw[Number(at[1])] : raw[0]
      const message = `invalid character '${ch ?? ''}' looking for beginning of object key string`
      return sendJson(
        res,
        400,
        path.startsWith('/v1/') ? openaiError(message, 'invalid_request_error') : { error: message },
      )
    }
    if (body === null || typeof body !== 'object' || Array.isArray(body)) {
      return sendJson(res, 400, { error: 'json: cannot unmarshal into Go value of type api.Request' })
    }

    async function show(b) {
      const name = b.model ?? b.name
      const model = typeof name === 'string' ? state.find(name) : undefined
      if (!model) return sendJson(res, 404, { error: `model '${name ?? ''}' not found` })
      return sendJson(res, 200, { ...fixtures.show, details: model.details, modified_at: model.modified_at })
    }

    async function pull(b) {
      const name = b.model ?? b.name
      if (typeof name !== 'string' || name === '') return sendJson(res, 400, { error: 'model is required' })
      const failing = name.includes('error')
      const lines = failing ? fixtures.pullError : pullLines(fixtures, pullSteps)
      const finish = () => {
        if (!failing) state.add(name, fixtures.pullHead[1].total + fixtures.pullTail[0].total)
      }
      if (b.stream === false) {
        for (const _ of lines) await sleep(chunkDelayMs)
        const last = lines.at(-1)
        if (last.error) return sendJson(res, 500, { error: last.error })
        finish()
        return sendJson(res, 200, { status: 'success' })
      }
      const complete = await streamLines(res, lines, 'application/x-ndjson')
      if (complete) finish()
    }

    async function del(b) {
      const name = b.model ?? b.name
      if (typeof name !== 'string' || !state.remove(name)) {
        return sendJson(res, 404, { error: `model '${name ?? ''}' not found` })
      }
      res.writeHead(200)
      return res.end()
    }

    async function generate(kind, b) {
      const startedAt = performance.now()
      if (typeof b.model !== 'string' || b.model === '')
        return sendJson(res, 400, { error: 'model is required' })
      const model = state.find(b.model)
      if (!model) return sendJson(res, 404, { error: `model '${b.model}' not found` })
      try {
        parseKeepAlive(b.keep_alive)
      } catch (err) {
        return sendJson(res, 400, { error: err.message })
      }
      const input = kind === 'chat' ? lastUserText(b.messages) : typeof b.prompt === 'string' ? b.prompt : ''
      const empty = kind === 'chat' ? !Array.isArray(b.messages) || b.messages.length === 0 : input === ''
      state.touch(model, b.keep_alive, b.options?.num_ctx)
      if (empty) {
        // Ollama's load/unload call: no messages/prompt, answered with one done object.
        const doneReason = parseKeepAlive(b.keep_alive) === 0 ? 'unload' : 'load'
        return sendJson(res, 200, nativeFinal(kind, b.model, { doneReason, startedAt }))
      }
      const pieces = replyPieces(input, chunks)
      const prompt = promptTokens(b)
      const content = pieces.join('')
      const final = nativeFinal(kind, b.model, { content: '', prompt, evalCount: pieces.length, startedAt })
      if (b.stream === false) {
        if (input.includes(ERROR_TRIGGER)) {
          return sendJson(res, 500, { error: fixtures.errorMidStream.at(-1).error })
        }
        return sendJson(
          res,
          200,
          nativeFinal(kind, b.model, { content, prompt, evalCount: pieces.length, startedAt }),
        )
      }
      const lines = pieces.map((p) => nativeChunk(kind, b.model, p))
      if (input.includes(ERROR_TRIGGER)) lines.splice(2, lines.length, fixtures.errorMidStream.at(-1))
      else lines.push(final)
      return streamLines(res, lines, 'application/x-ndjson')
    }

    async function embed(kind, b) {
      const startedAt = performance.now()
      const model = typeof b.model === 'string' ? state.find(b.model) : undefined
      if (!model) return sendJson(res, 404, { error: `model '${b.model ?? ''}' not found` })
      state.touch(model, b.keep_alive)
      if (kind === 'embeddings') return sendJson(res, 200, { embedding: embedding(String(b.prompt ?? '')) })
      const inputs = Array.isArray(b.input) ? b.input.map(String) : [String(b.input ?? '')]
      return sendJson(res, 200, {
        model: b.model,
        embeddings: inputs.map(embedding),
        total_duration: Math.round((performance.now() - startedAt) * 1e6),
        load_duration: 1_334_875,
        prompt_eval_count: inputs.reduce((n, s) => n + Math.max(1, s.split(/\s+/).filter(Boolean).length), 0),
      })
    }

    async function openai(kind, b) {
      if (typeof b.model !== 'string' || b.model === '') {
        return sendJson(res, 400, openaiError('model is required', 'invalid_request_error'))
      }
      const model = state.find(b.model)
      if (!model) return sendJson(res, 404, openaiError(`model "${b.model}" not found, try pulling it first`))
      state.touch(model, undefined, undefined)
      const input = kind === 'chat' ? lastUserText(b.messages) : String(b.prompt ?? '')
      const pieces = replyPieces(input, chunks)
      const prompt = promptTokens(b)
      const meta = {
        id: openaiId(kind === 'chat' ? 'chatcmpl' : 'cmpl'),
        created: Math.floor(Date.now() / 1000),
        model: b.model,
      }
      const usage = openaiUsage(prompt, pieces.length)
      if (b.stream !== true) {
        const text = pieces.join('')
        const choice =
          kind === 'chat'
            ? { index: 0, message: { role: 'assistant', content: text }, finish_reason: 'stop' }
            : { text, index: 0, finish_reason: 'stop' }
        return sendJson(res, 200, {
          id: meta.id,
          object: kind === 'chat' ? 'chat.completion' : 'text_completion',
          created: meta.created,
          model: b.model,
          system_fingerprint: 'fp_ollama',
          choices: [choice],
          usage,
        })
      }
      const events = pieces.map((p) => openaiChunk(kind, meta, p, null))
      events.push(openaiChunk(kind, meta, '', 'stop'))
      if (b.stream_options?.include_usage === true) {
        events.push({ ...openaiChunk(kind, meta, '', null), choices: [], usage })
      }
      return streamSse(res, events)
    }

    async function openaiEmbeddings(b) {
      const model = typeof b.model === 'string' ? state.find(b.model) : undefined
      if (!model)
        return sendJson(res, 404, openaiError(`model "${b.model ?? ''}" not found, try pulling it first`))
      const inputs = Array.isArray(b.input) ? b.input.map(String) : [String(b.input ?? '')]
      const tokens = inputs.reduce((n, s) => n + Math.max(1, s.split(/\s+/).filter(Boolean).length), 0)
      return sendJson(res, 200, {
        object: 'list',
        data: inputs.map((s, index) => ({ object: 'embedding', embedding: embedding(s), index })),
        model: b.model,
        usage: { prompt_tokens: tokens, total_tokens: tokens },
      })
    }

    return handler(body)
  }

  /** Writes NDJSON lines with the configured delay; false when the client went away first. */
  async function streamLines(res, lines, type) {
    res.writeHead(200, { 'content-type': type })
    for (let i = 0; i < lines.length; i++) {
      if (i > 0 && chunkDelayMs > 0) await sleep(chunkDelayMs)
      if (res.destroyed) return false
      res.write(`${JSON.stringify(lines[i])}\n`)
    }
    res.end()
    return true
  }

  async function streamSse(res, events) {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' })
    for (let i = 0; i < events.length; i++) {
      if (i > 0 && chunkDelayMs > 0) await sleep(chunkDelayMs)
      if (res.destroyed) return false
      res.write(`data: ${JSON.stringify(events[i])}\n\n`)
    }
    res.end('data: [DONE]\n\n')
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
  return server
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

function readBody(req) {
  return new Promise((resolve, reject) => {
    const parts = []
    req.on('data', (c) => parts.push(c))
    req.on('end', () => resolve(Buffer.concat(parts).toString('utf8')))
    req.on('error', reject)
  })
}

function sendJson(res, status, value) {
  res.writeHead(status, { 'content-type': JSON_TYPE })
  res.end(JSON.stringify(value))
}

function sendText(res, status, text) {
  res.writeHead(status, { 'content-type': 'text/plain' })
  res.end(text)
}

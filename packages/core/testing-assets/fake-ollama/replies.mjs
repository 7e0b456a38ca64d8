// Deterministic model output: the reply echoes the last user message word by word, so tests can predict
// every chunk; a thinking model first thinks "Thinking about: <words>". Shapes follow api/types.go
// (GenerateResponse, ChatResponse), openai/openai.go and middleware/openai.go (the /v1 writers), and the
// captured fixtures (docs-api-*-stream-*.json, openai-v1-*-sse-*.txt).
import { createHash } from 'node:crypto'

/** Text that makes chat/generate fail mid-stream like docs-api-error-mid-stream.txt. */
export const ERROR_TRIGGER = '__fake_error__'

export function contentText(content) {
  if (typeof content === 'string') return content
  if (Array.isArray(content)) {
    return content
      .map((p) => (typeof p === 'string' ? p : typeof p?.text === 'string' ? p.text : ''))
      .join(' ')
  }
  return ''
}

export function lastUserText(messages) {
  if (!Array.isArray(messages)) return ''
  for (let i = messages.length - 1; i >= 0; i--) {
    if (messages[i]?.role === 'user') return contentText(messages[i].content)
  }
  return ''
}

export function countWords(text) {
  return text.split(/\s+/).filter(Boolean).length
}

/** The reply pieces: `Echo: <words>`; FAKE_OLLAMA_CHUNKS=n repeats them cyclically to exactly n pieces. */
export function replyPieces(input, chunks) {
  const words = ['Echo:', ...input.split(/\s+/).filter(Boolean)]
  const n = chunks && chunks > 0 ? chunks : words.length
  const out = []
  for (let i = 0; i < n; i++) out.push((i === 0 ? '' : ' ') + words[i % words.length])
  return out
}

/** What a thinking model thinks before it answers. */
export function thinkingPieces(input) {
  return [
    'Thinking',
    ' about:',
    ...input
      .split(/\s+/)
      .filter(Boolean)
      .map((w) => ` ${w}`),
  ]
}

/** A deterministic unit vector from the text. */
export function embedding(text, dims = 8) {
  const v = []
  for (let block = 0; v.length < dims; block++) {
    const h = createHash('sha256').update(`${block}:${text}`).digest()
    for (let i = 0; i < h.length && v.length < dims; i++) v.push(h[i] / 255 - 0.5)
  }
  const norm = Math.hypot(...v) || 1
  return v.map((x) => Math.round((x / norm) * 1e6) / 1e6)
}

export function promptTokens(body) {
  const parts = []
  if (Array.isArray(body.messages)) for (const m of body.messages) parts.push(contentText(m?.content))
  if (typeof body.prompt === 'string') parts.push(body.prompt)
  if (typeof body.system === 'string') parts.push(body.system)
  return Math.max(1, countWords(parts.join(' ')))
}

const now = () => new Date().toISOString()

/** One streamed piece (thinking or content). */
export function nativeChunk(kind, model, piece, thinking = false, extra = {}) {
  const base = { model, ...extra, created_at: now() }
  if (kind === 'chat') {
    const message = thinking
      ? { role: 'assistant', content: '', thinking: piece }
      : { role: 'assistant', content: piece }
    return { ...base, message, done: false }
  }
  return thinking
    ? { ...base, response: '', thinking: piece, done: false }
    : { ...base, response: piece, done: false }
}

/** The final object (or the whole answer with stream:false). */
export function nativeFinal(kind, model, o) {
  const {
    content = '',
    thinking = '',
    prompt = 0,
    evalCount = 0,
    doneReason = 'stop',
    startedAt,
    loadedAt,
    extra = {},
  } = o
  const base = { model, ...extra, created_at: now() }
  if (doneReason === 'load' || doneReason === 'unload') {
    // routes.go: the load/unload answers carry no metrics
    return kind === 'chat'
      ? { ...base, message: { role: 'assistant', content: '' }, done_reason: doneReason, done: true }
      : { ...base, response: '', done: true, done_reason: doneReason }
  }
  const total = Math.max(1, Math.round((performance.now() - startedAt) * 1e6))
  const load = Math.max(1, Math.round(((loadedAt ?? startedAt) - startedAt) * 1e6))
  const counts = {
    total_duration: total,
    load_duration: load,
    prompt_eval_count: prompt,
    prompt_eval_duration: 342_546,
    eval_count: evalCount,
    eval_duration: Math.max(1, total - load - 342_546),
  }
  if (kind === 'chat') {
    const message = { role: 'assistant', content, ...(thinking ? { thinking } : {}) }
    return { ...base, message, done_reason: doneReason, done: true, ...counts }
  }
  return {
    ...base,
    response: content,
    ...(thinking ? { thinking } : {}),
    done: true,
    done_reason: doneReason,
    // api/types.go GenerateResponse.Context: the token ids of the conversation, for the next request; the
    // stand-in has no tokenizer, so a placeholder
    context: [1, 2, 3],
    ...counts,
  }
}

/** middleware/openai.go: ids are `chatcmpl-<0..998>` / `cmpl-<0..998>`. */
export function openaiId(prefix) {
  return `${prefix}-${Math.floor(Math.random() * 999)}`
}

/** openai.toChunk: `role` only on the first chunk; content kept even when empty. */
export function chatChunk(meta, delta, includeRole) {
  return {
    id: meta.id,
    object: 'chat.completion.chunk',
    created: meta.created,
    model: meta.model,
    system_fingerprint: 'fp_ollama',
    choices: [
      { index: 0, delta: { ...(includeRole ? { role: 'assistant' } : {}), ...delta }, finish_reason: null },
    ],
  }
}

/** openai.FinishChunk: an empty delta with the finish reason. */
export function chatFinishChunk(meta, reason = 'stop') {
  return {
    id: meta.id,
    object: 'chat.completion.chunk',
    created: meta.created,
    model: meta.model,
    system_fingerprint: 'fp_ollama',
    choices: [{ index: 0, delta: {}, finish_reason: reason }],
  }
}

/** openai.ToCompleteChunk (+ the zero usage middleware/openai.go puts on every chunk with include_usage). */
export function completionChunk(meta, text, finish, includeUsage) {
  return {
    id: meta.id,
    object: 'text_completion',
    created: Math.floor(Date.now() / 1000),
    choices: [{ text, index: 0, finish_reason: finish }],
    model: meta.model,
    system_fingerprint: 'fp_ollama',
    ...(includeUsage ? { usage: { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 } } : {}),
  }
}

export function openaiUsage(prompt, completion) {
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion }
}

/** openai.NewError: the type follows the status. */
export function openaiError(status, message) {
  const type = status === 400 ? 'invalid_request_error' : status === 404 ? 'not_found_error' : 'api_error'
  return { error: { message, type, param: null, code: null } }
}

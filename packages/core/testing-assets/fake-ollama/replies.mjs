// Deterministic model output: the reply echoes the last user message word by word, so tests can predict
// every chunk. Shapes follow the captured fixtures (docs-api-*-stream-*.json, openai-v1-*-sse-*.txt).
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

/** A deterministic unit-ish vector from the text, 8 dimensions. */
export function embedding(text) {
  const h = createHash('sha256').update(text).digest()
  const v = Array.from({ length: 8 }, (_, i) => h[i] / 255 - 0.5)
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

export function nativeChunk(kind, model, piece) {
  const base = { model, created_at: new Date().toISOString() }
  return kind === 'chat'
    ? { ...base, message: { role: 'assistant', content: piece }, done: false }
    : { ...base, response: piece, done: false }
}

export function nativeFinal(kind, model, { content, prompt, evalCount, doneReason = 'stop', startedAt }) {
  const total = Math.max(1, Math.round((performance.now() - startedAt) * 1e6))
  const base = { model, created_at: new Date().toISOString() }
  const counts = {
    total_duration: total,
    load_duration: 1_334_875,
    prompt_eval_count: prompt,
    prompt_eval_duration: 342_546,
    eval_count: evalCount,
    eval_duration: Math.max(1, total - 1_677_421),
  }
  if (doneReason === 'load' || doneReason === 'unload') {
    return kind === 'chat'
      ? { ...base, message: { role: 'assistant', content: '' }, done_reason: doneReason, done: true }
      : { ...base, response: '', done: true, done_reason: doneReason }
  }
  return kind === 'chat'
    ? { ...base, message: { role: 'assistant', content }, done_reason: doneReason, done: true, ...counts }
    : { ...base, response: content, done: true, done_reason: doneReason, context: [1, 2, 3], ...counts }
}

let completionSeq = 0

export function openaiId(prefix) {
  completionSeq += 1
  return `${prefix}-${completionSeq}`
}

export function openaiChunk(kind, { id, created, model }, piece, finish) {
  const base = { id, created, model, system_fingerprint: 'fp_ollama' }
  if (kind === 'chat') {
    return {
      ...base,
      object: 'chat.completion.chunk',
      choices: [{ index: 0, delta: { role: 'assistant', content: piece }, finish_reason: finish }],
    }
  }
  return { ...base, object: 'text_completion', choices: [{ text: piece, index: 0, finish_reason: finish }] }
}

export function openaiUsage(prompt, completion) {
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion }
}

export function openaiError(message, type = 'api_error') {
  return { error: { message, type, param: null, code: null } }
}

import { StringDecoder } from 'node:string_decoder'
import { SharedLLMError } from '../errors'
import { jsonTooDeep, MAX_JSON_DEPTH } from './http/body'
import { isPlainObject } from './request-body'

/**
 * The OpenAI routes, translated by the gateway to Ollama's native ones so that the context, keep_alive
 * and options are ours there too (Ollama's /v1 layer has no num_ctx or keep_alive). Both directions
 * follow Ollama's own compatibility layer, which is what an OpenAI client of Ollama sees:
 * `openai/openai.go` (FromChatRequest, FromCompleteRequest, ToChatCompletion, ToStreamChunks,
 * FinishChunk, ToCompletion, ToCompleteChunk, ToEmbeddingList, NewError) and `middleware/openai.go`
 * (ChatWriter, CompleteWriter, EmbedWriter: one `created` per stream, the role on the first chunk only,
 * finish_reason on its own chunk, the usage chunk with `choices: []` when `stream_options.include_usage`,
 * then `data: [DONE]`).
 */
export type Translation = 'chat' | 'completion' | 'embed'

export interface TranslatedRequest {
  /** The native body (`/api/chat`, `/api/generate`, `/api/embed`), without model, num_ctx, keep_alive. */
  native: Record<string, unknown>
  /** How to write the answer back. */
  reply: ReplyShape
}

export interface ReplyShape {
  kind: Translation
  stream: boolean
  includeUsage: boolean
  /** `chatcmpl-N` / `cmpl-N`, as middleware/openai.go names them. */
  id: string
  /** The model as the client named it (EmbedWriter echoes it). */
  model: string
  encodingFormat: string
}

function bad(message: string, field?: string): SharedLLMError {
  return new SharedLLMError('VALIDATION', message, field ? { details: { field } } : {})
}

/** A Go `*float64`/`*int` field: absent or null is nil; anything but a number is a decode error (400). */
function optNumber(body: Record<string, unknown>, field: string, int = false): number | undefined {
  const v = body[field]
  if (v === undefined || v === null) return undefined
  if (typeof v !== 'number' || !Number.isFinite(v) || (int && !Number.isInteger(v))) {
    throw bad(
      `json: cannot unmarshal ${typeof v} into Go struct field .${field} of type ${int ? 'int' : 'float64'}`,
      field,
    )
  }
  return v
}

function streamOf(body: Record<string, unknown>): boolean {
  const v = body.stream
  if (v === undefined || v === null) return false
  if (typeof v !== 'boolean')
    throw bad('json: cannot unmarshal into Go struct field .stream of type bool', 'stream')
  return v
}

function includeUsage(body: Record<string, unknown>): boolean {
  const so = body.stream_options
  return isPlainObject(so) && so.include_usage === true
}

function stopOption(stop: unknown, strict: boolean): string[] | undefined {
  if (typeof stop === 'string') return [stop]
  if (Array.isArray(stop)) {
    const out: string[] = []
    for (const s of stop) {
      if (typeof s === 'string') out.push(s)
      else if (strict) throw bad(`invalid type for 'stop' field: ${typeof s}`, 'stop')
    }
    return out
  }
  return undefined
}

/** openai.go decodeImageURL: base64 data URIs only; the native body carries the bare base64. */
function imageData(url: string): string {
  if (url.startsWith('http://') || url.startsWith('https://')) {
    throw bad('image URLs are not currently supported, please use base64 encoded data instead')
  }
  let data: string | undefined
  if (url.startsWith('data:;base64,')) data = url.slice('data:;base64,'.length)
  else {
    for (const t of ['jpeg', 'jpg', 'png', 'webp']) {
      const prefix = `data:image/${t};base64,`
      if (url.startsWith(prefix)) data = url.slice(prefix.length)
    }
  }
  if (data === undefined || !/^[A-Za-z0-9+/]*={0,2}$/.test(data) || data.length % 4 !== 0) {
    throw bad('invalid image input')
  }
  return data
}

function toolCallsIn(calls: unknown): Record<string, unknown>[] | undefined {
  if (calls === undefined || calls === null) return undefined
  if (!Array.isArray(calls)) throw bad('invalid tool calls', 'tool_calls')
  return calls.map((tc) => {
    const t = isPlainObject(tc) ? tc : {}
    const fn = isPlainObject(t.function) ? t.function : {}
    let args: unknown
    const text = typeof fn.arguments === 'string' ? fn.arguments : ''
    if (jsonTooDeep(text)) throw bad(`tool call arguments nest deeper than ${MAX_JSON_DEPTH} levels`)
    try {
      args = JSON.parse(text)
    } catch {
      throw bad('invalid tool call arguments')
    }
    return {
      ...(typeof t.id === 'string' && t.id ? { id: t.id } : {}),
      function: { name: typeof fn.name === 'string' ? fn.name : '', arguments: args },
    }
  })
}

/**
 * openai.go nameFromToolCallID, as one pass: the function name of every tool call id, the last one
 * winning (Ollama scans backwards per tool message; a map keeps a long history linear).
 */
function toolNamesById(messages: Record<string, unknown>[]): Map<string, string> {
  const names = new Map<string, string>()
  for (const m of messages) {
    if (!Array.isArray(m.tool_calls)) continue
    for (const tc of m.tool_calls) {
      if (
        isPlainObject(tc) &&
        typeof tc.id === 'string' &&
        isPlainObject(tc.function) &&
        typeof tc.function.name === 'string'
      ) {
        names.set(tc.id, tc.function.name)
      }
    }
  }
  return names
}

function thinkFromEffort(effort: string): unknown {
  switch (effort) {
    case '':
      return undefined
    case 'none':
      return false
    case 'minimal':
      return 'low'
    case 'low':
    case 'medium':
    case 'high':
    case 'max':
      return effort
    case 'xhigh':
    case 'ultra':
      return 'max'
    default:
      throw bad(
        `invalid reasoning value: ${JSON.stringify(effort)} (must be "minimal", "low", "medium", "high", "xhigh", "ultra", "max", or "none")`,
        'reasoning_effort',
      )
  }
}

let counter = 0
/** middleware/openai.go: `chatcmpl-%d` / `cmpl-%d` with rand.Intn(999). */
function replyId(prefix: string): string {
  counter = (counter + 1 + Math.floor(Math.random() * 997)) % 999
  return `${prefix}-${counter}`
}

/** openai.FromChatRequest; `max_completion_tokens` (newer OpenAI clients) stands in for an absent max_tokens. */
export function translateChat(body: Record<string, unknown>): TranslatedRequest {
  const raw = body.messages
  if (raw !== undefined && raw !== null && !Array.isArray(raw)) {
    throw bad('json: cannot unmarshal into Go struct field .messages of type []openai.Message', 'messages')
  }
  const input = (raw ?? []) as unknown[]
  if (input.length === 0) throw bad("[] is too short - 'messages'", 'messages')
  const msgs = input.map((m) => {
    if (!isPlainObject(m)) throw bad('invalid message format', 'messages')
    return m
  })
  const messages: Record<string, unknown>[] = []
  let toolNames: Map<string, string> | undefined
  for (const msg of msgs) {
    const role = typeof msg.role === 'string' ? msg.role : ''
    const reasoning = typeof msg.reasoning === 'string' && msg.reasoning ? { thinking: msg.reasoning } : {}
    const toolCallId = typeof msg.tool_call_id === 'string' && msg.tool_call_id ? msg.tool_call_id : ''
    let toolName = ''
    if (role.toLowerCase() === 'tool') {
      toolName = typeof msg.name === 'string' ? msg.name : ''
      if (!toolName && toolCallId) {
        toolNames ??= toolNamesById(msgs)
        toolName = toolNames.get(toolCallId) ?? ''
      }
    }
    const extra = {
      ...(toolName ? { tool_name: toolName } : {}),
      ...(toolCallId ? { tool_call_id: toolCallId } : {}),
    }
    const content = msg.content
    if (typeof content === 'string') {
      const calls = toolCallsIn(msg.tool_calls)
      messages.push({ role, content, ...reasoning, ...(calls ? { tool_calls: calls } : {}), ...extra })
    } else if (Array.isArray(content)) {
      for (const part of content) {
        if (!isPlainObject(part)) throw bad('invalid message format', 'messages')
        if (part.type === 'text') {
          if (typeof part.text !== 'string') throw bad('invalid message format', 'messages')
          messages.push({ role, content: part.text })
        } else if (part.type === 'image_url') {
          const iu = part.image_url
          const url = isPlainObject(iu) ? iu.url : iu
          if (typeof url !== 'string') throw bad('invalid message format', 'messages')
          messages.push({ role, content: '', images: [imageData(url)] })
        } else if (part.type === 'input_audio') {
          const audio = part.input_audio
          if (!isPlainObject(audio)) throw bad('invalid input_audio format', 'messages')
          if (typeof audio.data !== 'string')
            throw bad('invalid input_audio format: missing data', 'messages')
          if (!/^[A-Za-z0-9+/]*={0,2}$/.test(audio.data) || audio.data.length % 4 !== 0) {
            throw bad('invalid input_audio base64 data', 'messages')
          }
          messages.push({ role, content: '', images: [audio.data] })
        } else {
          throw bad('invalid message format', 'messages')
        }
      }
      const calls = toolCallsIn(msg.tool_calls)
      const last = messages.at(-1)
      if (last && calls && calls.length > 0)
        Object.assign(last, { tool_calls: calls, ...extra, ...reasoning })
    } else {
      if (msg.tool_calls === undefined || msg.tool_calls === null) {
        throw bad(
          `invalid message content type: ${content === null || content === undefined ? '<nil>' : typeof content}`,
          'messages',
        )
      }
      messages.push({ role, content: '', ...reasoning, tool_calls: toolCallsIn(msg.tool_calls), ...extra })
    }
  }
  const options: Record<string, unknown> = {}
  const stop = stopOption(body.stop, false)
  if (stop) options.stop = stop
  const maxTokens = optNumber(body, 'max_tokens', true) ?? optNumber(body, 'max_completion_tokens', true)
  if (maxTokens !== undefined) options.num_predict = maxTokens
  options.temperature = optNumber(body, 'temperature') ?? 1.0
  const seed = optNumber(body, 'seed', true)
  if (seed !== undefined) options.seed = seed
  const fp = optNumber(body, 'frequency_penalty')
  if (fp !== undefined) options.frequency_penalty = fp
  const pp = optNumber(body, 'presence_penalty')
  if (pp !== undefined) options.presence_penalty = pp
  options.top_p = optNumber(body, 'top_p') ?? 1.0
  const native: Record<string, unknown> = { messages, options, stream: streamOf(body) }
  const rf = body.response_format
  if (isPlainObject(rf) && typeof rf.type === 'string') {
    const type = rf.type.trim().toLowerCase()
    if (type === 'json_object') native.format = 'json'
    else if (type === 'json_schema' && isPlainObject(rf.json_schema) && rf.json_schema.schema !== undefined) {
      native.format = rf.json_schema.schema
    }
  }
  if (Array.isArray(body.tools) && body.tools.length > 0) native.tools = body.tools
  const reasoning = body.reasoning
  const effort = isPlainObject(reasoning)
    ? typeof reasoning.effort === 'string'
      ? reasoning.effort
      : ''
    : typeof body.reasoning_effort === 'string'
      ? body.reasoning_effort
      : ''
  const think = thinkFromEffort(effort)
  if (think !== undefined) native.think = think
  if (body.logprobs === true) native.logprobs = true
  const top = optNumber(body, 'top_logprobs', true)
  if (top !== undefined && top !== 0) native.top_logprobs = top
  return {
    native,
    reply: generationReply('chat', 'chatcmpl', body, native),
  }
}

/** The reply shape of a generating route (chat or completion): streaming as the native request asks. */
function generationReply(
  kind: 'chat' | 'completion',
  idPrefix: string,
  body: Record<string, unknown>,
  native: Record<string, unknown>,
): ReplyShape {
  return {
    kind,
    stream: native.stream === true,
    includeUsage: includeUsage(body),
    id: replyId(idPrefix),
    model: String(body.model ?? ''),
    encodingFormat: '',
  }
}

/** openai.FromCompleteRequest (a string prompt only, as the Go struct has it). */
export function translateCompletion(body: Record<string, unknown>): TranslatedRequest {
  const prompt = body.prompt ?? ''
  if (typeof prompt !== 'string') {
    throw bad('json: cannot unmarshal into Go struct field CompletionRequest.prompt of type string', 'prompt')
  }
  const options: Record<string, unknown> = {}
  const stop = stopOption(body.stop, true)
  if (stop) options.stop = stop
  const maxTokens = optNumber(body, 'max_tokens', true)
  if (maxTokens !== undefined) options.num_predict = maxTokens
  options.temperature = optNumber(body, 'temperature') ?? 1.0
  const seed = optNumber(body, 'seed', true)
  if (seed !== undefined) options.seed = seed
  options.frequency_penalty = optNumber(body, 'frequency_penalty') ?? 0
  options.presence_penalty = optNumber(body, 'presence_penalty') ?? 0
  const topP = optNumber(body, 'top_p') ?? 0
  options.top_p = topP !== 0 ? topP : 1.0
  const native: Record<string, unknown> = { prompt, options, stream: streamOf(body) }
  if (typeof body.suffix === 'string' && body.suffix) native.suffix = body.suffix
  const lp = optNumber(body, 'logprobs', true)
  if (lp !== undefined && lp > 0) {
    native.logprobs = true
    native.top_logprobs = lp
  }
  return {
    native,
    reply: generationReply('completion', 'cmpl', body, native),
  }
}

/** middleware/openai.go EmbeddingsMiddleware. */
export function translateEmbed(body: Record<string, unknown>): TranslatedRequest {
  const format = typeof body.encoding_format === 'string' ? body.encoding_format : ''
  if (format && format.toLowerCase() !== 'float' && format.toLowerCase() !== 'base64') {
    throw bad(
      `Invalid value for 'encoding_format' = ${format}. Supported values: ['float', 'base64'].`,
      'encoding_format',
    )
  }
  let input = body.input
  if (input === '') input = ['']
  if (input === undefined || input === null || (Array.isArray(input) && input.length === 0)) {
    throw bad('invalid input', 'input')
  }
  const native: Record<string, unknown> = { input }
  const dims = optNumber(body, 'dimensions', true)
  if (dims) native.dimensions = dims
  return {
    native,
    reply: {
      kind: 'embed',
      stream: false,
      includeUsage: false,
      id: '',
      model: String(body.model ?? ''),
      encodingFormat: format,
    },
  }
}

export function translateRequest(kind: Translation, body: Record<string, unknown>): TranslatedRequest {
  if (kind === 'chat') return translateChat(body)
  if (kind === 'completion') return translateCompletion(body)
  return translateEmbed(body)
}

/** openai.NewError's `type` for a status. */
export function openaiErrorType(status: number): string {
  if (status === 400) return 'invalid_request_error'
  if (status === 404) return 'not_found_error'
  return 'api_error'
}

/** Rewrites a native answer into the OpenAI one on its way to the client, chunk by chunk. */
export interface ReplyTransform {
  contentType: string
  push(chunk: Buffer): Buffer
  end(): Buffer
}

const seconds = (iso: unknown): number => {
  const t = typeof iso === 'string' ? Date.parse(iso) : Number.NaN
  return Number.isFinite(t) ? Math.floor(t / 1000) : Math.floor(Date.now() / 1000)
}

function usageOf(r: Record<string, unknown>): {
  prompt_tokens: number
  completion_tokens: number
  total_tokens: number
} {
  const p = typeof r.prompt_eval_count === 'number' ? r.prompt_eval_count : 0
  const c = typeof r.eval_count === 'number' ? r.eval_count : 0
  return { prompt_tokens: p, completion_tokens: c, total_tokens: p + c }
}

/** openai.ToToolCalls: arguments as a JSON string, `index` from the function. */
function toolCallsOut(calls: unknown): Record<string, unknown>[] {
  if (!Array.isArray(calls)) return []
  return calls.map((tc) => {
    const t = isPlainObject(tc) ? tc : {}
    const fn = isPlainObject(t.function) ? t.function : {}
    return {
      id: typeof t.id === 'string' ? t.id : '',
      index: typeof fn.index === 'number' ? fn.index : 0,
      type: 'function',
      function: {
        name: typeof fn.name === 'string' ? fn.name : '',
        arguments: JSON.stringify(fn.arguments ?? null),
      },
    }
  })
}

function messageOf(r: Record<string, unknown>): Record<string, unknown> {
  return isPlainObject(r.message) ? r.message : {}
}

function str(v: unknown): string {
  return typeof v === 'string' ? v : ''
}

/** ToChatCompletion. */
function chatCompletion(shape: ReplyShape, r: Record<string, unknown>): Record<string, unknown> {
  const m = messageOf(r)
  const calls = toolCallsOut(m.tool_calls)
  let reason: string | null = str(r.done_reason) || null
  if (reason === 'stop' && calls.length > 0) reason = 'tool_calls'
  const message: Record<string, unknown> = { role: str(m.role), content: str(m.content) }
  if (str(m.thinking)) message.reasoning = m.thinking
  if (calls.length > 0) message.tool_calls = calls
  const choice: Record<string, unknown> = { index: 0, message, finish_reason: reason }
  if (Array.isArray(r.logprobs) && r.logprobs.length > 0) choice.logprobs = { content: r.logprobs }
  return {
    id: shape.id,
    object: 'chat.completion',
    created: seconds(r.created_at),
    model: str(r.model),
    system_fingerprint: 'fp_ollama',
    choices: [choice],
    usage: usageOf(r),
  }
}

/** ToCompletion / ToCompleteChunk. */
function completion(shape: ReplyShape, r: Record<string, unknown>, chunk: boolean): Record<string, unknown> {
  return {
    id: shape.id,
    object: 'text_completion',
    created: chunk ? Math.floor(Date.now() / 1000) : seconds(r.created_at),
    model: str(r.model),
    system_fingerprint: 'fp_ollama',
    choices: [{ text: str(r.response), index: 0, finish_reason: str(r.done_reason) || null }],
    ...(chunk ? {} : { usage: usageOf(r) }),
  }
}

/** ToEmbeddingList (base64: little-endian float32, floatsToBase64). */
function embeddingList(shape: ReplyShape, r: Record<string, unknown>): Record<string, unknown> {
  if (!Array.isArray(r.embeddings))
    return { object: '', data: null, model: '', usage: { prompt_tokens: 0, total_tokens: 0 } }
  const base64 = shape.encodingFormat.toLowerCase() === 'base64'
  const data = r.embeddings.map((e, index) => {
    const floats = Array.isArray(e) ? (e as number[]) : []
    let embedding: unknown = floats
    if (base64) {
      const buf = Buffer.alloc(floats.length * 4)
      for (const [i, f] of floats.entries()) buf.writeFloatLE(f, i * 4)
      embedding = buf.toString('base64')
    }
    return { object: 'embedding', embedding, index }
  })
  const p = typeof r.prompt_eval_count === 'number' ? r.prompt_eval_count : 0
  return { object: 'list', data, model: shape.model, usage: { prompt_tokens: p, total_tokens: p } }
}

const sse = (v: unknown) => `data: ${JSON.stringify(v)}\n\n`
const EMPTY = Buffer.alloc(0)

/** The chunk(s) ChatWriter writes for one native line (ToStreamChunks, FinishChunk, the usage chunk). */
class ChatStream {
  private first = true
  private toolCallSent = false
  private created: number | undefined

  constructor(private readonly shape: ReplyShape) {}

  line(r: Record<string, unknown>): string {
    if (this.created === undefined) this.created = seconds(r.created_at)
    const created = this.created
    const m = messageOf(r)
    const content = str(m.content)
    const thinking = str(m.thinking)
    const calls = toolCallsOut(m.tool_calls)
    const logprobs = Array.isArray(r.logprobs) && r.logprobs.length > 0 ? { content: r.logprobs } : undefined
    const base = {
      id: this.shape.id,
      object: 'chat.completion.chunk',
      created,
      model: str(r.model),
      system_fingerprint: 'fp_ollama',
    }
    let out = ''
    const emptyTrailer =
      r.done === true && !this.first && !content && !thinking && calls.length === 0 && !logprobs
    if (!emptyTrailer) {
      const delta = (
        withRole: boolean,
        parts: { content?: boolean; reasoning?: boolean; calls?: boolean },
      ) => ({
        ...(withRole ? { role: 'assistant' } : {}),
        ...(parts.content ? { content } : {}),
        ...(parts.reasoning && thinking ? { reasoning: thinking } : {}),
        ...(parts.calls && calls.length > 0 ? { tool_calls: calls } : {}),
      })
      const chunk = (d: Record<string, unknown>, lp: boolean) => ({
        ...base,
        choices: [{ index: 0, delta: d, finish_reason: null, ...(lp && logprobs ? { logprobs } : {}) }],
      })
      const mixed = thinking !== '' && (content !== '' || calls.length > 0)
      if (!mixed) out += sse(chunk(delta(this.first, { content: true, reasoning: true, calls: true }), true))
      else {
        out += sse(chunk(delta(this.first, { reasoning: true }), true))
        out += sse(chunk(delta(false, { content: true, calls: true }), false))
      }
      if (calls.length > 0) this.toolCallSent = true
      this.first = false
    }
    if (r.done === true) {
      let reason = str(r.done_reason) || 'stop'
      if (reason === 'stop' && this.toolCallSent) reason = 'tool_calls'
      const finish = { ...base, choices: [{ index: 0, delta: {}, finish_reason: reason }] }
      out += sse(finish)
      if (this.shape.includeUsage) out += sse({ ...finish, choices: [], usage: usageOf(r) })
      out += 'data: [DONE]\n\n'
    }
    return out
  }
}

/** CompleteWriter's stream: every chunk, a zero usage on each when asked, the usage chunk, [DONE]. */
function completionStreamLine(shape: ReplyShape, r: Record<string, unknown>): string {
  const c = completion(shape, r, true)
  if (shape.includeUsage) c.usage = { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 }
  let out = sse(c)
  if (r.done === true) {
    if (shape.includeUsage) out += sse({ ...c, choices: [], usage: usageOf(r) })
    out += 'data: [DONE]\n\n'
  }
  return out
}

function parseLine(text: string): Record<string, unknown> | undefined {
  // An answer line (Ollama's, or a pool peer's) too deep to write out again is not one we can translate.
  if (jsonTooDeep(text)) return undefined
  try {
    const v = JSON.parse(text) as unknown
    return isPlainObject(v) ? v : undefined
  } catch {
    return undefined
  }
}

/** An error as Ollama's BaseWriter.writeError writes it: openai.NewError(status, message). */
export function openaiErrorFromNative(status: number, text: string): Record<string, unknown> {
  const parsed = parseLine(text)
  const message = parsed && typeof parsed.error === 'string' ? parsed.error : text.trim()
  return { error: { message, type: openaiErrorType(status), param: null, code: null } }
}

/** An answer read whole and rewritten once at its end into one JSON object. */
function wholeAnswer(rewrite: (text: string) => unknown): ReplyTransform {
  const decoder = new StringDecoder('utf8')
  let pending = ''
  return {
    contentType: 'application/json',
    push(chunk) {
      pending += decoder.write(chunk)
      return EMPTY
    },
    end() {
      pending += decoder.end()
      return Buffer.from(`${JSON.stringify(rewrite(pending))}\n`)
    },
  }
}

/**
 * The transform for one answer: `status` and `type` are Ollama's. A non-200 answer is rewritten into
 * the OpenAI error shape; NDJSON into SSE; one JSON object into the completion object.
 */
export function replyTransform(shape: ReplyShape, status: number, type: string | undefined): ReplyTransform {
  if (status !== 200) return wholeAnswer((text) => openaiErrorFromNative(status, text))
  const ndjson = !!type && type.startsWith('application/x-ndjson')
  if (!ndjson) {
    return wholeAnswer((text) => {
      const r = parseLine(text) ?? {}
      return shape.kind === 'chat'
        ? chatCompletion(shape, r)
        : shape.kind === 'completion'
          ? completion(shape, r, false)
          : embeddingList(shape, r)
    })
  }
  const decoder = new StringDecoder('utf8')
  let pending = ''
  const chat = new ChatStream(shape)
  const handle = (line: string): string => {
    if (!line.trim()) return ''
    const r = parseLine(line)
    if (!r) return ''
    // An error inside Ollama's 200 stream: an OpenAI client raises an `error` event as an APIError.
    if (typeof r.error === 'string')
      return sse({ error: { message: r.error, type: 'api_error', param: null, code: null } })
    return shape.kind === 'chat' ? chat.line(r) : completionStreamLine(shape, r)
  }
  return {
    contentType: 'text/event-stream',
    push(chunk) {
      pending += decoder.write(chunk)
      let out = ''
      let nl = pending.indexOf('\n')
      while (nl !== -1) {
        out += handle(pending.slice(0, nl))
        pending = pending.slice(nl + 1)
        nl = pending.indexOf('\n')
      }
      return out ? Buffer.from(out, 'utf8') : EMPTY
    },
    end() {
      pending += decoder.end()
      const out = handle(pending)
      pending = ''
      return out ? Buffer.from(out, 'utf8') : EMPTY
    },
  }
}

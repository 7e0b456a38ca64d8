import { SharedLLMError } from '../errors'

/**
 * The request bodies the gateway forwards, per route, as the exact JSON names of the Go structs Ollama
 * decodes them into. Ollama reads a body with Go's `encoding/json`, which matches an object key to a field
 * case-insensitively (Unicode simple folding: U+212A KELVIN SIGN folds to `k`, U+017F LONG S to `s`) and
 * lets the last match win; so the outgoing body is built from these names only, and a key that folds to one
 * of them without being it is refused rather than guessed at.
 *
 * Sources (ollama/ollama v0.33): `api/types.go` (GenerateRequest, ChatRequest, EmbedRequest,
 * EmbeddingRequest, ShowRequest, PullRequest) and `openai/openai.go` (ChatCompletionRequest,
 * CompletionRequest, EmbedRequest), which `middleware/openai.go` decodes the same way.
 */
export type BodyShape =
  | 'chat'
  | 'generate'
  | 'embed'
  | 'embeddings'
  | 'show'
  | 'pull'
  | 'openai_chat'
  | 'openai_completion'
  | 'openai_embed'

export const REQUEST_FIELDS: Readonly<Record<BodyShape, readonly string[]>> = {
  chat: [
    'model',
    'messages',
    'stream',
    'format',
    'keep_alive',
    'tools',
    'options',
    'think',
    'truncate',
    'shift',
    '_debug_render_only',
    'logprobs',
    'top_logprobs',
  ],
  generate: [
    'model',
    'prompt',
    'suffix',
    'system',
    'template',
    'context',
    'stream',
    'raw',
    'format',
    'keep_alive',
    'images',
    'options',
    'think',
    'truncate',
    'shift',
    '_debug_render_only',
    'logprobs',
    'top_logprobs',
  ],
  embed: ['model', 'input', 'keep_alive', 'truncate', 'dimensions', 'options'],
  embeddings: ['model', 'prompt', 'keep_alive', 'options'],
  // ShowRequest also has system, template and options; a device only needs the metadata.
  show: ['model', 'verbose'],
  // PullRequest's insecure, username and password are deprecated and ignored by Ollama; never forwarded.
  pull: ['model', 'stream'],
  openai_chat: [
    'model',
    'messages',
    'stream',
    'stream_options',
    'max_tokens',
    // Not in Ollama's struct (it ignores it); newer OpenAI clients send it instead of max_tokens.
    'max_completion_tokens',
    'seed',
    'stop',
    'temperature',
    'frequency_penalty',
    'presence_penalty',
    'top_p',
    'response_format',
    'tools',
    'reasoning',
    'reasoning_effort',
    'logprobs',
    'top_logprobs',
    '_debug_render_only',
  ],
  openai_completion: [
    'model',
    'prompt',
    'frequency_penalty',
    'max_tokens',
    'presence_penalty',
    'seed',
    'stop',
    'stream',
    'stream_options',
    'temperature',
    'top_p',
    'suffix',
    'logprobs',
    '_debug_render_only',
  ],
  openai_embed: ['input', 'model', 'dimensions', 'encoding_format'],
}

/**
 * Fields of the request struct that the gateway reads but does not forward under this name: the older
 * `name` of ShowRequest and PullRequest (Ollama uses it when `model` is empty).
 */
const LEGACY_NAME: ReadonlySet<BodyShape> = new Set(['show', 'pull'])

/** Go's `encoding/json` key match for a field name: ASCII case folding plus K (U+212A) ~ k and ſ (U+017F) ~ s. */
export function goFoldsTo(key: string, name: string): boolean {
  let i = 0
  const runes = Array.from(key)
  if (runes.length !== name.length) return false
  for (const r of runes) {
    const n = name[i++] as string
    if (r === n) continue
    const lower = n.toLowerCase()
    if (lower < 'a' || lower > 'z') return false
    if (r === lower || r === n.toUpperCase()) continue
    if (lower === 'k' && r === '\u212A') continue
    if (lower === 's' && r === '\u017F') continue
    return false
  }
  return true
}

/**
 * Options a device of a non-admin role may set: sampling and length only (`options` is a map in Go and
 * `Options.FromMap` matches its keys exactly, so case variants there are simply ignored by Ollama).
 * `num_ctx` and `num_predict` are clamped by the policy.
 */
export const DEVICE_OPTIONS: ReadonlySet<string> = new Set([
  'temperature',
  'top_k',
  'top_p',
  'min_p',
  'typical_p',
  'seed',
  'stop',
  'repeat_penalty',
  'repeat_last_n',
  'presence_penalty',
  'frequency_penalty',
  'num_keep',
  'num_predict',
  'num_ctx',
])

/**
 * Options that change where and how a model is loaded (memory, placement, threads; a new value forces a
 * reload that evicts other devices' models): the `Runner` struct of api/types.go, and the load-time
 * options older Ollama versions read. Refused for non-admin roles with a 400 naming the option.
 */
export const RUNNER_OPTIONS: ReadonlySet<string> = new Set([
  'num_batch',
  'num_gpu',
  'main_gpu',
  'use_mmap',
  'num_thread',
  'draft_num_predict',
  'numa',
  'low_vram',
  'f16_kv',
  'vocab_only',
  'use_mlock',
  'logits_all',
  'embedding_only',
  'num_gqa',
  'rope_frequency_base',
  'rope_frequency_scale',
])

function invalid(field: string, why: string): SharedLLMError {
  return new SharedLLMError('VALIDATION', `${field}: ${why}`, { details: { field } })
}

/**
 * The fields of `body` that Ollama would read for `shape`, under their exact names. A key that is not
 * exact but folds to a forwarded field is a 400 naming the key; other keys are dropped. For show and pull
 * the older `name` stands in for an absent `model`.
 */
export function pickFields(shape: BodyShape, body: Record<string, unknown>): Record<string, unknown> {
  const names = REQUEST_FIELDS[shape]
  const out: Record<string, unknown> = {}
  for (const key of Object.keys(body)) {
    if (names.includes(key)) {
      out[key] = body[key]
      continue
    }
    if (LEGACY_NAME.has(shape) && key === 'name') continue
    const folded =
      names.find((n) => goFoldsTo(key, n)) ??
      (LEGACY_NAME.has(shape) && goFoldsTo(key, 'name') ? 'name' : undefined)
    if (folded) {
      throw invalid(
        key,
        `unknown key ${JSON.stringify(key)}; Ollama would read it as "${folded}", so send "${folded}" exactly`,
      )
    }
  }
  if (LEGACY_NAME.has(shape) && (out.model === undefined || out.model === '') && body.name !== undefined) {
    out.model = body.name
  }
  return out
}

/** A JSON object (not null, not an array): the one such check of the gateway. */
export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return !!v && typeof v === 'object' && !Array.isArray(v)
}

/** `options` as sent: undefined (absent or null, as Ollama's Go client sends it) or an object. */
export function optionsOf(body: Record<string, unknown>): Record<string, unknown> | undefined {
  const o = body.options
  if (o === undefined || o === null) return undefined
  if (!isPlainObject(o)) throw invalid('options', 'must be an object')
  return o
}

/**
 * The options a device of a non-admin role may forward: sampling options kept, load-time options a 400
 * naming the option, anything else dropped (Ollama ignores keys it does not know).
 */
export function deviceOptions(options: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(options)) {
    if (RUNNER_OPTIONS.has(key)) {
      throw invalid(
        `options.${key}`,
        'changes how the model is loaded and is set by the host owner; remove it from the request',
      )
    }
    if (!DEVICE_OPTIONS.has(key) || value === null || value === undefined) continue
    if (key === 'stop') {
      const ok =
        typeof value === 'string' || (Array.isArray(value) && value.every((s) => typeof s === 'string'))
      if (!ok) throw invalid('options.stop', 'must be a string or a list of strings')
    } else if (typeof value !== 'number' || !Number.isFinite(value)) {
      throw invalid(`options.${key}`, 'must be a number')
    }
    out[key] = value
  }
  return out
}

/** A whole number of tokens from `field`, or a 400 naming it. */
export function wholeTokens(value: unknown, field: string, min: number): number {
  const n = typeof value === 'number' ? value : Number.NaN
  if (!Number.isInteger(n) || n < min || n > 10_000_000) {
    throw invalid(field, `must be a whole number of tokens${min > 0 ? '' : ' (0 or more)'}`)
  }
  return n
}

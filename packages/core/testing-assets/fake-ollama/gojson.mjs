// How Ollama's Go server reads a request body: gin's ShouldBindJSON is encoding/json, which matches object
// keys to struct fields case-insensitively (with Unicode simple folding, so "ſtream" is "stream" and
// "\u212Aeep_alive" is "keep_alive"), lets the last matching key win, ignores unknown keys and refuses a value
// of the wrong type. Maps (such as `options`) keep their keys exactly. time.ParseDuration is Go's.
// Sources: api/types.go (request structs, Duration.UnmarshalJSON), openai/openai.go (the /v1 request structs).

/** A JSON-decoding failure answered as a 400 with Go's wording. */
export class GoJsonError extends Error {}

/** encoding/json's foldName: ASCII upper-cased, other runes to the smallest rune of their fold orbit. */
export function foldName(s) {
  let out = ''
  for (const ch of s) {
    const c = ch.codePointAt(0)
    if (c < 0x80) {
      out += c >= 0x61 && c <= 0x7a ? String.fromCharCode(c - 32) : ch
      continue
    }
    const orbit = new Set([c])
    for (const t of [
      ch.toLowerCase(),
      ch.toUpperCase(),
      ch.toLowerCase().toUpperCase(),
      ch.toUpperCase().toLowerCase(),
    ]) {
      if ([...t].length === 1) orbit.add(t.codePointAt(0))
    }
    out += String.fromCodePoint(Math.min(...orbit))
  }
  return out
}

/** The keys of an object from parseOrdered, in document order with duplicates kept. */
export const ENTRIES = Symbol('entries')

/**
 * JSON.parse for text it has already accepted, except that every object also carries [ENTRIES]: its key/value
 * pairs in document order, duplicates included. JSON.parse keeps the last value of a repeated key at the
 * position of the first, and encoding/json decodes the keys in document order (the last match wins), so
 * `{"model":"a","Model":"b","model":"c"}` is `c` in Go but would read as `b` from JSON.parse's object.
 */
export function parseOrdered(text) {
  let i = 0
  const ws = () => {
    while (i < text.length && ' \t\n\r'.includes(text[i])) i++
  }
  const str = () => {
    const start = i++
    while (text[i] !== '"') i += text[i] === '\\' ? 2 : 1
    i++
    return JSON.parse(text.slice(start, i))
  }
  const value = () => {
    ws()
    const c = text[i]
    if (c === '{') {
      i++
      const out = {}
      const entries = []
      ws()
      if (text[i] === '}') i++
      else
        for (;;) {
          ws()
          const k = str()
          ws()
          i++ // :
          const v = value()
          entries.push([k, v])
          out[k] = v
          ws()
          if (text[i++] === '}') break
        }
      Object.defineProperty(out, ENTRIES, { value: entries })
      return out
    }
    if (c === '[') {
      i++
      const out = []
      ws()
      if (text[i] === ']') i++
      else
        for (;;) {
          out.push(value())
          ws()
          if (text[i++] === ']') break
        }
      return out
    }
    if (c === '"') return str()
    const m = /^(?:true|false|null|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)/.exec(text.slice(i, i + 400))
    i += m[0].length
    return JSON.parse(m[0])
  }
  return value()
}

/**
 * Decodes `value` into the shape `schema` describes, like encoding/json into a Go struct.
 * schema: { goType: 'api.ChatRequest', fields: { name: type } } where type is 'string' | 'bool' | 'number' |
 * 'int' | 'any' | 'map' | 'duration' | 'think' | { array: type } | a nested schema.
 */
export function decodeStruct(value, schema, path = schema.goType.split('.').pop()) {
  if (value === null) return null
  if (typeof value !== 'object' || Array.isArray(value)) {
    // the request itself is not an object: Go names the type, not a field
    if (!path.includes('.'))
      throw new GoJsonError(
        `json: cannot unmarshal ${jsonKind(value)} into Go value of type ${schema.goType}`,
      )
    throw typeError(value, path, schema.goType)
  }
  const byFold = new Map(Object.keys(schema.fields).map((k) => [foldName(k), k]))
  const out = {}
  // in document order, duplicates included (parseOrdered), so the last matching key wins as in Go
  for (const [key, v] of value[ENTRIES] ?? Object.entries(value)) {
    const field = schema.fields[key] !== undefined ? key : byFold.get(foldName(key))
    if (field === undefined) continue
    out[field] = decodeValue(v, schema.fields[field], `${path}.${field}`)
  }
  return out
}

function decodeValue(v, type, path) {
  if (typeof type === 'object' && type.fields) return decodeStruct(v, type, path)
  if (typeof type === 'object' && type.array) {
    if (v === null) return null
    if (!Array.isArray(v)) throw typeError(v, path, `[]${goName(type.array)}`)
    return v.map((x) => decodeValue(x, type.array, path))
  }
  if (v === null) return undefined // null leaves a Go field (or pointer) unset
  switch (type) {
    case 'any':
      return v
    case 'string':
      if (typeof v !== 'string') throw typeError(v, path, 'string')
      return v
    case 'bool':
      if (typeof v !== 'boolean') throw typeError(v, path, 'bool')
      return v
    case 'number':
      if (typeof v !== 'number') throw typeError(v, path, 'float64')
      return v
    case 'int':
      if (typeof v !== 'number') throw typeError(v, path, 'int')
      if (!Number.isInteger(v))
        throw new GoJsonError(`json: cannot unmarshal number ${v} into Go struct field ${path} of type int`)
      return v
    case 'map':
      if (typeof v !== 'object' || Array.isArray(v)) throw typeError(v, path, 'map[string]interface {}')
      return v
    case 'duration':
      return parseKeepAliveJson(v)
    case 'think':
      // api.ThinkValue accepts a bool or "high" | "medium" | "low" | "max" (api/types.go ThinkValue)
      if (typeof v === 'boolean') return v
      if (typeof v === 'string') {
        if (['high', 'medium', 'low', 'max'].includes(v)) return v
        throw new GoJsonError(
          `invalid think value: ${JSON.stringify(v)} (must be "high", "medium", "low", "max", true, or false)`,
        )
      }
      throw new GoJsonError(
        'think must be a boolean or string ("high", "medium", "low", "max", true, or false)',
      )
    default:
      return v
  }
}

function goName(t) {
  return typeof t === 'string' ? t : 'struct'
}

function jsonKind(v) {
  if (Array.isArray(v)) return 'array'
  if (v === null) return 'null'
  return typeof v === 'object' ? 'object' : typeof v === 'boolean' ? 'bool' : typeof v
}

function typeError(v, path, goType) {
  return new GoJsonError(
    `json: cannot unmarshal ${jsonKind(v)} into Go struct field ${path} of type ${goType}`,
  )
}

const MAX_DURATION_MS = Number.POSITIVE_INFINITY

/**
 * api.Duration.UnmarshalJSON (api/types.go): a number is seconds (negative: forever), a string goes through
 * time.ParseDuration (negative: forever), anything else is refused. Returns milliseconds.
 */
export function parseKeepAliveJson(v) {
  if (typeof v === 'number') return v < 0 ? MAX_DURATION_MS : v * 1000
  if (typeof v === 'string') {
    const ns = parseGoDuration(v)
    return ns < 0 ? MAX_DURATION_MS : ns / 1e6
  }
  const kind =
    typeof v === 'boolean' ? 'bool' : Array.isArray(v) ? '[]interface {}' : 'map[string]interface {}'
  throw new GoJsonError(`Unsupported type: '${kind}'`)
}

/** OLLAMA_KEEP_ALIVE as envconfig.KeepAlive reads it: a Go duration, else whole seconds; default 5m. */
export function keepAliveFromEnv(raw) {
  const s = trimEnv(raw)
  let ms = 5 * 60_000
  if (s !== '') {
    try {
      ms = parseGoDuration(s) / 1e6
    } catch {
      if (/^[+-]?\d+$/.test(s)) ms = Number(s) * 1000
    }
  }
  return ms < 0 ? MAX_DURATION_MS : ms
}

/** envconfig.Var: trimmed of spaces, then of quotes. */
export function trimEnv(raw) {
  return String(raw ?? '')
    .trim()
    .replace(/^["']+|["']+$/g, '')
}

const UNITS = { ns: 1, us: 1e3, µs: 1e3, μs: 1e3, ms: 1e6, s: 1e9, m: 60e9, h: 3600e9 }

/** Go's time.ParseDuration, in nanoseconds (as a float); throws Go's error text. */
export function parseGoDuration(s) {
  const orig = s
  const quoted = JSON.stringify(orig)
  let neg = false
  if (s !== '' && (s[0] === '-' || s[0] === '+')) {
    neg = s[0] === '-'
    s = s.slice(1)
  }
  if (s === '0') return 0
  if (s === '') throw new Error(`time: invalid duration ${quoted}`)
  let total = 0
  while (s !== '') {
    const num = /^(\d*)(\.(\d*))?/.exec(s)
    if (!num || (num[1] === '' && (num[3] ?? '') === '')) throw new Error(`time: invalid duration ${quoted}`)
    if (num[0] === '.') throw new Error(`time: invalid duration ${quoted}`)
    s = s.slice(num[0].length)
    const unit = /^[^0-9.]*/.exec(s)[0]
    if (unit === '') throw new Error(`time: missing unit in duration ${quoted}`)
    const scale = UNITS[unit]
    if (scale === undefined)
      throw new Error(`time: unknown unit ${JSON.stringify(unit)} in duration ${quoted}`)
    s = s.slice(unit.length)
    total += Number(`${num[1] || '0'}.${num[3] || '0'}`) * scale
  }
  if (total > 2 ** 63 - 1) throw new Error(`time: invalid duration ${quoted}`)
  return neg ? -total : total
}

// The request structs (api/types.go; openai/openai.go), only the fields the stand-in reads.
const message = {
  goType: 'api.Message',
  fields: {
    role: 'string',
    content: 'any',
    thinking: 'string',
    images: { array: 'any' },
    tool_calls: { array: 'any' },
  },
}
export const GenerateRequest = {
  goType: 'api.GenerateRequest',
  fields: {
    model: 'string',
    prompt: 'string',
    suffix: 'string',
    system: 'string',
    template: 'string',
    context: { array: 'int' },
    stream: 'bool',
    raw: 'bool',
    format: 'any',
    images: { array: 'any' },
    keep_alive: 'duration',
    options: 'map',
    think: 'think',
    truncate: 'bool',
    shift: 'bool',
  },
}
export const ChatRequest = {
  goType: 'api.ChatRequest',
  fields: {
    model: 'string',
    messages: { array: message },
    stream: 'bool',
    format: 'any',
    keep_alive: 'duration',
    tools: { array: 'any' },
    options: 'map',
    think: 'think',
    truncate: 'bool',
    shift: 'bool',
  },
}
export const EmbedRequest = {
  goType: 'api.EmbedRequest',
  fields: {
    model: 'string',
    input: 'any',
    keep_alive: 'duration',
    truncate: 'bool',
    dimensions: 'int',
    options: 'map',
  },
}
export const EmbeddingRequest = {
  goType: 'api.EmbeddingRequest',
  fields: { model: 'string', prompt: 'string', keep_alive: 'duration', options: 'map' },
}
export const ShowRequest = {
  goType: 'api.ShowRequest',
  fields: { model: 'string', name: 'string', system: 'string', verbose: 'bool', options: 'map' },
}
export const PullRequest = {
  goType: 'api.PullRequest',
  fields: { model: 'string', name: 'string', insecure: 'bool', stream: 'bool' },
}
export const DeleteRequest = { goType: 'api.DeleteRequest', fields: { model: 'string', name: 'string' } }
export const CreateRequest = {
  goType: 'api.CreateRequest',
  fields: {
    model: 'string',
    name: 'string',
    from: 'string',
    stream: 'bool',
    parameters: 'map',
    system: 'string',
    template: 'string',
  },
}
const streamOptions = { goType: 'openai.StreamOptions', fields: { include_usage: 'bool' } }
const openaiMessage = { goType: 'openai.Message', fields: { role: 'string', content: 'any', name: 'string' } }
export const ChatCompletionRequest = {
  goType: 'openai.ChatCompletionRequest',
  fields: {
    model: 'string',
    messages: { array: openaiMessage },
    stream: 'bool',
    stream_options: streamOptions,
    max_tokens: 'int',
    temperature: 'number',
    tools: { array: 'any' },
    reasoning: { goType: 'openai.Reasoning', fields: { effort: 'string' } },
    reasoning_effort: 'string',
  },
}
export const CompletionRequest = {
  goType: 'openai.CompletionRequest',
  fields: {
    model: 'string',
    prompt: 'string',
    stream: 'bool',
    stream_options: streamOptions,
    max_tokens: 'int',
  },
}
export const OpenAIEmbedRequest = {
  goType: 'openai.EmbedRequest',
  fields: { model: 'string', input: 'any', dimensions: 'int', encoding_format: 'string' },
}

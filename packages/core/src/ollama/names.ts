import { SharedLLMError } from '../errors'

export const MAX_MODEL_NAME_LENGTH = 200

const SEGMENT = /^[A-Za-z0-9][A-Za-z0-9._-]*$/
const TAG = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/

/**
 * Checks a model name before it reaches Ollama: `[namespace/]model[:tag]` (e.g. `llama3.2`, `qwen2.5:7b`,
 * `shaw/dmeta-embedding-zh:latest`). Slashes only separate namespace segments; `..`, backslashes, absolute
 * paths, `%`, whitespace and control characters are refused, so a name can never become a path or a URL
 * trick. Returns the trimmed name; throws VALIDATION naming the problem.
 */
export function validateModelName(name: unknown): string {
  const fail = (why: string): never => {
    throw new SharedLLMError('VALIDATION', `Invalid model name: ${why}`, { details: { field: 'model' } })
  }
  if (typeof name !== 'string') return fail(`expected a string, got ${name === null ? 'null' : typeof name}`)
  const s = name.trim()
  if (s === '') return fail('it is empty')
  if (s.length > MAX_MODEL_NAME_LENGTH) return fail(`it is longer than ${MAX_MODEL_NAME_LENGTH} characters`)
  const shown = JSON.stringify(s)
  if (s.includes('\\')) return fail(`${shown} contains a backslash`)
  if (s.startsWith('/')) return fail(`${shown} starts with "/"`)
  if (s.split('/').some((p) => p === '.' || p === '..'))
    return fail(`${shown} contains a "." or ".." segment`)
  const slash = s.lastIndexOf('/')
  const base = s.slice(slash + 1)
  const namespaces = slash === -1 ? [] : s.slice(0, slash).split('/')
  // `gpt-oss:20b:cloud` and `llama3.2:8b:local` carry a source after the tag (internal/modelref/modelref.go).
  const sourced = /:(cloud|local)$/i.test(base) && base.indexOf(':') !== base.lastIndexOf(':')
  const plain = sourced ? base.slice(0, base.lastIndexOf(':')) : base
  const colon = plain.indexOf(':')
  const model = colon === -1 ? plain : plain.slice(0, colon)
  const tag = colon === -1 ? null : plain.slice(colon + 1)
  for (const ns of namespaces) {
    if (!SEGMENT.test(ns)) {
      return fail(`${shown}: namespace "${ns}" may contain only letters, digits, "." "_" "-"`)
    }
  }
  if (!SEGMENT.test(model)) {
    return fail(
      `${shown}: the model part may contain only letters, digits, "." "_" "-" and must start with one`,
    )
  }
  if (tag !== null && !TAG.test(tag)) {
    return fail(`${shown}: the tag after ":" may contain only letters, digits, "." "_" "-" (at most 128)`)
  }
  return s
}

/** Where a name says it runs (`internal/modelref/modelref.go`): `:cloud` / `-cloud` suffix, `:local`, or neither. */
export type ModelSource = 'cloud' | 'local' | 'unspecified'

/** A model name as Ollama reads it: `[scheme://][host/][namespace/]model[:tag]` with its defaults filled in. */
export interface ResolvedName {
  /** What the caller sent, trimmed. */
  original: string
  source: ModelSource
  /** The name after the source suffix is removed (`gpt-oss:20b-cloud` → `gpt-oss:20b`). */
  base: string
  host: string
  namespace: string
  model: string
  tag: string
  /** Case-folded `host/namespace/model:tag` of the base name (`Name.EqualFold`). */
  key: string
  /**
   * Ollama's `DisplayShortest` (the form `/api/tags` lists), lower-cased: `llama3.2:latest`,
   * `library/llama3.2` and `registry.ollama.ai/library/llama3.2:latest` all give `llama3.2:latest`. A
   * cloud name keeps its cloud form (`gpt-oss:20b:cloud` and `gpt-oss:20b-cloud` give
   * `gpt-oss:20b-cloud`), so it never stands for the local model of the same base name.
   */
  display: string
}

const DEFAULT_HOST = 'registry.ollama.ai'
const DEFAULT_NAMESPACE = 'library'
const DEFAULT_TAG = 'latest'

/** `cutLast` of name.go: splits at the last `sep`. */
function cutLast(s: string, sep: string): [string, string, boolean] {
  const i = s.lastIndexOf(sep)
  if (i === -1) return [s, '', false]
  return [s.slice(0, i), s.slice(i + sep.length), true]
}

/** The source suffix of `modelref.parseSourceSuffix`: `:cloud`, `:local`, or a tag ending in `-cloud`. */
function sourceSuffix(raw: string): { base: string; source: ModelSource } {
  const idx = raw.lastIndexOf(':')
  if (idx >= 0) {
    const suffixRaw = raw.slice(idx + 1).trim()
    const suffix = suffixRaw.toLowerCase()
    if (suffix === 'cloud') return { base: raw.slice(0, idx), source: 'cloud' }
    if (suffix === 'local') return { base: raw.slice(0, idx), source: 'local' }
    if (!suffixRaw.includes('/') && suffix.endsWith('-cloud')) {
      return { base: raw.slice(0, idx + 1) + suffixRaw.slice(0, -'-cloud'.length), source: 'cloud' }
    }
  }
  return { base: raw, source: 'unspecified' }
}

/**
 * Resolves a name as Ollama does before it looks a model up: the source suffix first
 * (`internal/modelref/modelref.go` ParseRef; `a:local:cloud` is refused there and here), then
 * `types/model/name.go` ParseNameBare (tag after the last `:` that follows the last `/`, then model,
 * namespace and host from the right) merged with the defaults `registry.ollama.ai`, `library`, `latest`.
 * Names compare case-insensitively (`Name.EqualFold`). Throws VALIDATION for a name Ollama would not take.
 */
export function resolveModelName(raw: unknown): ResolvedName {
  if (typeof raw !== 'string') return parseName(raw)
  const hit = resolvedNames.get(raw)
  if (hit) return hit
  const r = Object.freeze(parseName(raw))
  // The gateway resolves the same few names several times a request; bounded, so unique names cannot grow it.
  if (resolvedNames.size >= 1024) resolvedNames.clear()
  resolvedNames.set(raw, r)
  return r
}

const resolvedNames = new Map<string, Readonly<ResolvedName>>()

function parseName(raw: unknown): ResolvedName {
  const original = validateModelName(raw)
  const { base, source } = sourceSuffix(original)
  if (source !== 'unspecified' && sourceSuffix(base).source !== 'unspecified') {
    throw new SharedLLMError(
      'VALIDATION',
      `Invalid model name: use either :local or :cloud, not both (${original})`,
      {
        details: { field: 'model' },
      },
    )
  }
  let s = base
  let tag = ''
  if (s.lastIndexOf(':') > s.lastIndexOf('/')) [s, tag] = cutLast(s, ':')
  let model: string
  let namespace = ''
  let host = ''
  let cut: boolean
  ;[s, model, cut] = cutLast(s, '/')
  if (!cut) model = s
  else {
    ;[s, namespace, cut] = cutLast(s, '/')
    if (!cut) namespace = s
    else host = s.includes('://') ? (s.split('://')[1] as string) : s
  }
  if (!model || (cut && !host)) {
    throw new SharedLLMError(
      'VALIDATION',
      `Invalid model name: ${JSON.stringify(original)} has an empty part`,
      {
        details: { field: 'model' },
      },
    )
  }
  host ||= DEFAULT_HOST
  namespace ||= DEFAULT_NAMESPACE
  tag ||= DEFAULT_TAG
  const lower = (x: string) => x.toLowerCase()
  const key = `${lower(host)}/${lower(namespace)}/${lower(model)}:${lower(tag)}`
  let display: string
  if (lower(host) !== DEFAULT_HOST) display = `${host}/${namespace}/${model}:${tag}`
  else if (lower(namespace) !== DEFAULT_NAMESPACE) display = `${namespace}/${model}:${tag}`
  else display = `${model}:${tag}`
  if (source === 'cloud') {
    // One name for a cloud model however it is written: the legacy stub name Ollama pulls it as
    // (modelref.NormalizePullName: `x:20b` → `x:20b-cloud`, `x` → `x:cloud`), never the local model's.
    const explicitTag = base.lastIndexOf(':') > base.lastIndexOf('/')
    display = explicitTag ? `${display}-cloud` : display.replace(/:latest$/, ':cloud')
  }
  return { original, source, base, host, namespace, model, tag, key, display: lower(display) }
}

/**
 * The key two names of one model share, in Ollama's `DisplayShortest` form lower-cased: `llama3`,
 * `Llama3:latest`, `library/llama3` and `registry.ollama.ai/library/llama3:latest` are one model
 * (`types/model/name.go`, `Name.EqualFold`); a `:local` suffix names the same model too.
 */
export function canonicalModelName(name: string): string {
  try {
    return resolveModelName(name).display
  } catch {
    return name.trim().toLowerCase()
  }
}

export function sameModel(a: string, b: string): boolean {
  return canonicalModelName(a) === canonicalModelName(b)
}

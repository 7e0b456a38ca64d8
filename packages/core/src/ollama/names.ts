import { SharedLLMError } from '../errors'
import { normaliseModelName } from '../gateway/patterns'

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
  const colon = base.indexOf(':')
  const model = colon === -1 ? base : base.slice(0, colon)
  const tag = colon === -1 ? null : base.slice(colon + 1)
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

/**
 * The key two names of one model share: `llama3`, `Llama3` and `llama3:latest` name the same model, as
 * Ollama compares names case-insensitively (`types/model/name.go`, `Name.EqualFold`). The one normaliser is
 * `normaliseModelName`; this is its name in the Ollama client's vocabulary.
 */
export const canonicalModelName: (name: string) => string = normaliseModelName

export function sameModel(a: string, b: string): boolean {
  return normaliseModelName(a) === normaliseModelName(b)
}

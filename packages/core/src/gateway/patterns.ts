import { canonicalModelName } from '../ollama/names'

/**
 * A name as Ollama resolves it (`llama3` is `llama3:latest`, `library/llama3` and
 * `registry.ollama.ai/library/llama3` are too; see `resolveModelName`): patterns and names compare on it.
 */
export function normaliseModelName(name: string): string {
  return canonicalModelName(name)
}

/** A glob pattern as tokens: a literal character, `*` (within a segment) or `**` (across segments). */
type GlobToken = string | typeof STAR | typeof DOUBLE_STAR
const STAR = Symbol('*')
const DOUBLE_STAR = Symbol('**')

/** Patterns tokenised once (a role's list is checked on every request of its devices). */
const tokenised = new Map<string, GlobToken[]>()

function tokensOf(pattern: string): GlobToken[] {
  let t = tokenised.get(pattern)
  if (!t) {
    t = []
    for (let i = 0; i < pattern.length; i++) {
      if (pattern[i] !== '*') t.push(pattern[i] as string)
      else if (pattern[i + 1] === '*') {
        t.push(DOUBLE_STAR)
        while (pattern[i + 1] === '*') i++
      } else t.push(STAR)
    }
    if (tokenised.size >= 1024) tokenised.clear()
    tokenised.set(pattern, t)
  }
  return t
}

/**
 * Whether the glob matches all of `text`: `*` matches within one path segment (never a `/`), so `smollm2*`
 * cannot admit `smollm2-attacker/backdoored-model`; `**` matches across segments (`hf.co/**`). A dynamic
 * program over pattern × text, linear in each: a backtracking RegExp took seconds on a pattern such as
 * `**a**a**a**b` (patterns also come from paired peers).
 */
export function globMatch(pattern: string, text: string): boolean {
  const tokens = tokensOf(pattern)
  // row[j]: the first j tokens match the text read so far.
  let row = new Array<boolean>(tokens.length + 1).fill(false)
  row[0] = true
  for (let j = 1; j <= tokens.length; j++) row[j] = !!row[j - 1] && typeof tokens[j - 1] !== 'string'
  for (const ch of text) {
    const next = new Array<boolean>(tokens.length + 1).fill(false)
    for (let j = 1; j <= tokens.length; j++) {
      const tok = tokens[j - 1]
      if (tok === DOUBLE_STAR) next[j] = !!next[j - 1] || !!row[j]
      else if (tok === STAR) next[j] = !!next[j - 1] || (!!row[j] && ch !== '/')
      else next[j] = !!row[j - 1] && tok === ch
    }
    row = next
  }
  return !!row[tokens.length]
}

/**
 * Whether a role's allowed-model patterns admit `model`. Empty list: every model. A pattern without a tag
 * and without `*` matches every tag of that model (`llama3` admits `llama3:8b`).
 */
export function modelAllowed(patterns: readonly string[], model: string): boolean {
  if (patterns.length === 0) return true
  const full = normaliseModelName(model)
  return patterns.some((p) => {
    const pat = p.trim().toLowerCase()
    if (!pat.includes(':') && !pat.includes('*')) return full.startsWith(`${pat}:`)
    // Only the resolved name is compared: `library/x` or `x:local` cannot slip past a pattern for `x`.
    return globMatch(pat, full)
  })
}

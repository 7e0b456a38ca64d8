import { canonicalModelName } from '../ollama/names'

/**
 * A name as Ollama resolves it (`llama3` is `llama3:latest`, `library/llama3` and
 * `registry.ollama.ai/library/llama3` are too; see `resolveModelName`): patterns and names compare on it.
 */
export function normaliseModelName(name: string): string {
  return canonicalModelName(name)
}

/**
 * `*` matches within one path segment (never a `/`), so `smollm2*` cannot admit
 * `smollm2-attacker/backdoored-model`; `**` matches across segments (`hf.co/**`).
 */
function globToRegExp(pattern: string): RegExp {
  let re = compiled.get(pattern)
  if (!re) {
    if (compiled.size >= 1024) compiled.clear()
    re = compileGlob(pattern)
    compiled.set(pattern, re)
  }
  return re
}

/** Patterns compiled once (a role's list is checked on every request of its devices). */
const compiled = new Map<string, RegExp>()

function compileGlob(pattern: string): RegExp {
  const escaped = pattern
    .replace(/[.+?^${}()|[\]\\]/g, '\\$&')
    .split('**')
    .map((part) => part.replace(/\*/g, '[^/]*'))
    .join('.*')
  return new RegExp(`^${escaped}$`, 'i')
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
    return globToRegExp(pat).test(full)
  })
}

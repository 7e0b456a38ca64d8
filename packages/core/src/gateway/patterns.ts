/** `llama3` means `llama3:latest`; patterns and names compare on the full `name:tag`. */
export function normaliseModelName(name: string): string {
  const n = name.trim().toLowerCase()
  const slash = n.lastIndexOf('/')
  return n.slice(slash + 1).includes(':') ? n : `${n}:latest`
}

/**
 * `*` matches within one path segment (never a `/`), so `smollm2*` cannot admit
 * `smollm2-attacker/backdoored-model`; `**` matches across segments (`hf.co/**`).
 */
function globToRegExp(pattern: string): RegExp {
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
    return globToRegExp(pat).test(full) || globToRegExp(pat).test(model.trim().toLowerCase())
  })
}

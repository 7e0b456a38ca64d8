// Model names as Ollama resolves them. Sources: internal/modelref/modelref.go (the `:cloud`, `-cloud` and
// `:local` source suffixes), server/model_resolver.go, types/model/name.go (ParseName, IsValid,
// DisplayShortest) and server/routes.go getExistingName (each part matched case-insensitively against the
// installed models).

const DEFAULT_HOST = 'registry.ollama.ai'
const DEFAULT_NAMESPACE = 'library'
const DEFAULT_TAG = 'latest'
const MISSING = '!MISSING!'

export class NameError extends Error {
  constructor(message, kind) {
    super(message)
    this.kind = kind // 'required' | 'conflict' | 'invalid'
  }
}

/** modelref.ParseRef: strips an explicit source suffix. */
export function parseRef(raw) {
  const s = String(raw ?? '').trim()
  if (s === '') throw new NameError('model is required', 'required')
  const first = sourceSuffix(s)
  if (first.explicit && sourceSuffix(first.base).explicit) {
    throw new NameError(`use either :local or :cloud, not both: ${JSON.stringify(s)}`, 'conflict')
  }
  return { original: s, base: first.base, source: first.source }
}

function sourceSuffix(raw) {
  const idx = raw.lastIndexOf(':')
  if (idx >= 0) {
    const suffixRaw = raw.slice(idx + 1).trim()
    const suffix = suffixRaw.toLowerCase()
    if (suffix === 'cloud') return { base: raw.slice(0, idx), source: 'cloud', explicit: true }
    if (suffix === 'local') return { base: raw.slice(0, idx), source: 'local', explicit: true }
    if (!suffixRaw.includes('/') && suffix.endsWith('-cloud')) {
      return {
        base: raw.slice(0, idx + 1) + suffixRaw.slice(0, -'-cloud'.length),
        source: 'cloud',
        explicit: true,
      }
    }
  }
  return { base: raw, source: 'unspecified', explicit: false }
}

/** types/model/name.go ParseName (with the defaults merged in). */
export function parseName(s) {
  const n = { host: '', namespace: '', model: '', tag: '' }
  if (s.lastIndexOf(':') > s.lastIndexOf('/')) {
    ;[s, n.tag] = cutPromised(s, ':')
  }
  let promised
  ;[s, n.model, promised] = cutPromised(s, '/')
  if (!promised) {
    n.model = s
  } else {
    ;[s, n.namespace, promised] = cutPromised(s, '/')
    if (!promised) n.namespace = s
    else n.host = s.includes('://') ? s.slice(s.indexOf('://') + 3) : s
  }
  n.host ||= DEFAULT_HOST
  n.namespace ||= DEFAULT_NAMESPACE
  n.tag ||= DEFAULT_TAG
  return n
}

function cutPromised(s, sep) {
  const i = s.lastIndexOf(sep)
  if (i < 0) return [s, '', false]
  return [s.slice(0, i) || MISSING, s.slice(i + sep.length) || MISSING, true]
}

function validPart(kind, s) {
  const max = kind === 'host' ? 350 : 80
  if (s.length < 1 || s.length > max) return false
  for (let i = 0; i < s.length; i++) {
    const c = s[i]
    const alnum = /[A-Za-z0-9_]/.test(c)
    if (i === 0) {
      if (!alnum) return false
      continue
    }
    if (c === '_' || c === '-') continue
    if (c === '.') {
      if (kind === 'namespace') return false
      continue
    }
    if (c === ':') {
      if (kind !== 'host') return false
      continue
    }
    if (!alnum) return false
  }
  return true
}

export function isValidName(n) {
  return (
    validPart('host', n.host) &&
    validPart('namespace', n.namespace) &&
    validPart('model', n.model) &&
    validPart('tag', n.tag)
  )
}

export function fullName(n) {
  return `${n.host}/${n.namespace}/${n.model}:${n.tag}`
}

/** Name.DisplayShortest: what /api/ps and /api/show print. */
export function displayShortest(n) {
  let out = ''
  if (n.host.toLowerCase() !== DEFAULT_HOST) out = `${n.host}/${n.namespace}/`
  else if (n.namespace.toLowerCase() !== DEFAULT_NAMESPACE) out = `${n.namespace}/`
  return `${out}${n.model}:${n.tag}`
}

/** Name.Namespace, as /v1/models `owned_by` reports it. */
export function namespaceOf(s) {
  return parseName(s).namespace
}

/**
 * parseAndValidateModelRef: { ref, name } or throws a NameError. `name` has its parts canonicalized against
 * `installed` (full names) one part at a time, like getExistingName.
 */
export function resolveName(raw, installed) {
  const ref = parseRef(raw)
  const n = parseName(ref.base)
  if (!isValidName(n)) throw new NameError('invalid model name', 'invalid')
  const set = {}
  for (const full of installed) {
    const e = parseName(full)
    for (const part of ['host', 'namespace', 'model', 'tag']) {
      if (!set[part] && e[part].toLowerCase() === n[part].toLowerCase()) {
        n[part] = e[part]
      }
    }
  }
  return { ref, name: n, full: fullName(n) }
}

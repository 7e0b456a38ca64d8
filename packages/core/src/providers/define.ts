import { errorMessage, isSharedLLMError, SharedLLMError } from '../errors'
import type { MemoryDevice, MemoryKind } from '../protocol/types'
import type { MemoryProvider, ProviderDefinition, ProviderDeviceInput, ProviderHost } from './types'

const NAME_RE = /^[a-z][a-z0-9-]{0,39}$/
const KINDS: readonly MemoryKind[] = ['dedicated', 'unified', 'system']
const DEFINED = Symbol.for('sharedllm.provider')

/**
 * Turns a provider definition into a `MemoryProvider` that the probe loop can trust: defaults filled,
 * name checked, `isAvailable` that never throws, ids stamped `name:localId`, byte counts validated and every
 * failure wrapped in a SharedLLMError that keeps its cause. Throws VALIDATION for a malformed definition.
 */
export function defineProvider(def: ProviderDefinition): MemoryProvider {
  if (typeof def !== 'object' || def === null) {
    throw new SharedLLMError('VALIDATION', 'a memory provider must be an object with a name and snapshot()')
  }
  const name = def.name
  if (typeof name !== 'string' || !NAME_RE.test(name)) {
    throw new SharedLLMError(
      'VALIDATION',
      `memory provider name ${JSON.stringify(name)} is invalid: use a lower-case word such as 'nvidia' (letters, digits, '-')`,
      { details: { field: 'name' } },
    )
  }
  if (typeof def.snapshot !== 'function') {
    throw new SharedLLMError('VALIDATION', `memory provider '${name}' has no snapshot() function`, {
      details: { field: 'snapshot' },
    })
  }
  const priority = def.priority ?? 0
  if (typeof priority !== 'number' || !Number.isFinite(priority)) {
    throw new SharedLLMError('VALIDATION', `memory provider '${name}': priority must be a finite number`, {
      details: { field: 'priority' },
    })
  }
  const supersedes = def.supersedes ?? []
  if (!Array.isArray(supersedes) || supersedes.some((s) => typeof s !== 'string' || s === name)) {
    throw new SharedLLMError(
      'VALIDATION',
      `memory provider '${name}': supersedes must list other providers' names`,
      { details: { field: 'supersedes' } },
    )
  }

  const provider: MemoryProvider = {
    name,
    priority,
    supersedes: [...supersedes],
    async isAvailable(host: ProviderHost): Promise<boolean> {
      if (!def.isAvailable) return true
      try {
        return (await def.isAvailable(host)) === true
      } catch {
        return false
      }
    },
    async snapshot(host: ProviderHost, signal?: AbortSignal): Promise<MemoryDevice[]> {
      let raw: unknown
      try {
        signal?.throwIfAborted()
        raw = await def.snapshot(host, signal)
      } catch (err) {
        throw wrapFailure(name, err, signal)
      }
      return validateDevices(name, raw)
    },
  }
  if (def.close) {
    const close = def.close.bind(def)
    provider.close = async () => {
      try {
        await close()
      } catch (err) {
        throw wrapFailure(name, err)
      }
    }
  }
  Object.defineProperty(provider, DEFINED, { value: true })
  return provider
}

/** True for a provider made by `defineProvider` (its output is already validated). */
export function isDefinedProvider(p: unknown): p is MemoryProvider {
  return typeof p === 'object' && p !== null && (p as Record<symbol, unknown>)[DEFINED] === true
}

function wrapFailure(name: string, err: unknown, signal?: AbortSignal): SharedLLMError {
  if (signal?.aborted) {
    return new SharedLLMError('CANCELLED', `memory provider '${name}': snapshot was cancelled`, {
      cause: err,
      details: { provider: name },
    })
  }
  if (isSharedLLMError(err) && (err.code === 'TIMEOUT' || err.code === 'CANCELLED')) {
    return new SharedLLMError(err.code, `memory provider '${name}': ${err.message}`, {
      cause: err,
      details: { provider: name },
    })
  }
  return new SharedLLMError('PROVIDER_FAILED', `memory provider '${name}' failed: ${errorMessage(err)}`, {
    cause: err,
    details: { provider: name },
  })
}

function invalid(name: string, message: string, index: number): SharedLLMError {
  return new SharedLLMError(
    'PROVIDER_FAILED',
    `memory provider '${name}' returned invalid data: ${message}`,
    {
      details: { provider: name, device: index },
    },
  )
}

function isByteCount(n: unknown): n is number {
  return typeof n === 'number' && Number.isSafeInteger(n) && n >= 0
}

/** Checks a provider's raw output; NaN, negatives, fractions or used > total never reach the dashboard. */
export function validateDevices(name: string, raw: unknown): MemoryDevice[] {
  if (!Array.isArray(raw)) throw invalid(name, 'snapshot() must return an array of devices', -1)
  const seen = new Set<string>()
  return raw.map((d: ProviderDeviceInput & { id?: unknown }, i) => {
    if (typeof d !== 'object' || d === null) throw invalid(name, `device ${i} is not an object`, i)
    const local = typeof d.localId === 'string' ? d.localId : typeof d.id === 'string' ? d.id : ''
    const localId = local.startsWith(`${name}:`) ? local.slice(name.length + 1) : local
    if (localId.trim() === '') throw invalid(name, `device ${i} has no localId`, i)
    const id = `${name}:${localId}`
    if (seen.has(id)) throw invalid(name, `device id '${id}' appears twice`, i)
    seen.add(id)
    if (typeof d.name !== 'string' || d.name.trim() === '')
      throw invalid(name, `device '${id}' has no name`, i)
    if (!KINDS.includes(d.kind)) {
      throw invalid(name, `device '${id}' has kind ${JSON.stringify(d.kind)}; use ${KINDS.join(', ')}`, i)
    }
    for (const [field, v] of [
      ['totalBytes', d.totalBytes],
      ['usedBytes', d.usedBytes],
    ] as const) {
      if (!isByteCount(v)) {
        throw invalid(
          name,
          `device '${id}' ${field} is ${String(v)}; expected a whole, non-negative byte count`,
          i,
        )
      }
    }
    if (d.usedBytes > d.totalBytes) {
      throw invalid(name, `device '${id}' uses ${d.usedBytes} bytes of ${d.totalBytes}`, i)
    }
    const freeBytes = d.freeBytes ?? d.totalBytes - d.usedBytes
    if (!isByteCount(freeBytes)) {
      throw invalid(
        name,
        `device '${id}' freeBytes is ${String(freeBytes)}; expected a whole, non-negative byte count`,
        i,
      )
    }
    if (freeBytes > d.totalBytes) {
      throw invalid(name, `device '${id}' has ${freeBytes} bytes free of ${d.totalBytes}`, i)
    }
    return {
      id,
      name: d.name.trim(),
      kind: d.kind,
      totalBytes: d.totalBytes,
      usedBytes: d.usedBytes,
      freeBytes,
    }
  })
}

import { SharedLLMError } from '../errors'
import { resolveModelName } from '../ollama/names'

/** Registries a device may pull from: Ollama's own and Hugging Face. Any other host stays unreachable. */
const PULL_REGISTRIES = new Set(['registry.ollama.ai', 'ollama.com', 'hf.co', 'huggingface.co'])

/**
 * The model a request names, validated as Ollama resolves it (types/model/name.go, internal/modelref: a
 * name such as `x:local:cloud` is a 400 here, not a name that the allow-list's fallbacks read another way);
 * the name that is checked is the name that runs.
 */
export function requestModel(raw: unknown): string {
  if (raw === undefined || raw === null || raw === '') {
    throw new SharedLLMError('VALIDATION', 'model: required (the name of the model to use)', {
      details: { field: 'model' },
    })
  }
  return resolveModelName(raw).original
}

/**
 * A pull name: valid, and if its first segment is a registry host (has a dot or a port), one of the known
 * registries, so a device cannot make the host fetch from an address of its choosing.
 */
export function pullModelName(raw: unknown): string {
  const name = requestModel(raw)
  const parts = name.split('/')
  const first = parts[0] as string
  if (parts.length > 1 && (first.includes('.') || first.includes(':'))) {
    if (!PULL_REGISTRIES.has(first.toLowerCase())) {
      throw new SharedLLMError(
        'VALIDATION',
        `Invalid model name: pulls through the gateway may only come from ${[...PULL_REGISTRIES].join(', ')}; '${first}' is not one of them`,
        { details: { field: 'model' } },
      )
    }
  }
  return name
}

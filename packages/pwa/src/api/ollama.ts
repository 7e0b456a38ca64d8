import { request } from './http'

/**
 * Ollama's own API through the gateway (`/ollama/api/*`), for the owner's pages: the owner's session
 * cookie (or a device key) is the credential, like any client of the gateway.
 */

/** The part of Ollama's ShowResponse the model details show (ollama api/types.go `ShowResponse`). */
export interface ShowResponse {
  license?: string
  modelfile?: string
  parameters?: string
  template?: string
  system?: string
  details?: {
    format?: string
    family?: string
    families?: string[] | null
    parameter_size?: string
    quantization_level?: string
  }
  model_info?: Record<string, unknown>
  capabilities?: string[]
  modified_at?: string
}

export function showModel(name: string): Promise<ShowResponse> {
  return request<ShowResponse>('/ollama/api/show', { method: 'POST', body: { model: name } })
}

/**
 * Unloads a model now: a generate with no prompt and keep_alive 0 is how Ollama's own `ollama stop` does it
 * (server/routes.go GenerateHandler: an empty prompt with keep_alive 0 expires the runner).
 */
export async function unloadModel(name: string): Promise<void> {
  await request<unknown>('/ollama/api/generate', {
    method: 'POST',
    body: { model: name, keep_alive: 0, stream: false },
  })
}

/** `<architecture>.context_length` from model_info: the context the model was trained for. */
export function trainedContext(show: ShowResponse): number | null {
  const info = show.model_info ?? {}
  const arch = info['general.architecture']
  const v = typeof arch === 'string' ? info[`${arch}.context_length`] : undefined
  return typeof v === 'number' ? v : null
}

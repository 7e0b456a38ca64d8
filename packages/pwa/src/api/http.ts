import type { ApiError } from '@sharedllm/core/protocol'

/** An error answer from the host: `message` is the API's own `error` text, shown to the user as is. */
export class ApiRequestError extends Error {
  override readonly name = 'ApiRequestError'
  constructor(
    readonly status: number,
    readonly code: ApiError['code'] | 'NETWORK',
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message)
  }
}

export interface RequestOptions {
  method?: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE'
  body?: unknown
  headers?: Record<string, string>
  signal?: AbortSignal
  /** Send the device key as a bearer token (default: whenever one is stored). */
  bearer?: string | null
}

const DEVICE_KEY = 'sharedllm.device_key'

export const deviceKeyStorage = {
  get: (): string | null => globalThis.localStorage?.getItem(DEVICE_KEY) ?? null,
  set: (key: string) => globalThis.localStorage?.setItem(DEVICE_KEY, key),
  clear: () => globalThis.localStorage?.removeItem(DEVICE_KEY),
}

export function authHeaders(bearer: string | null | undefined): Record<string, string> {
  return bearer ? { authorization: `Bearer ${bearer}` } : {}
}

/** Turns a non-2xx response into ApiRequestError with the API's message (or a plain one when it sent none). */
export async function errorFrom(res: Response): Promise<ApiRequestError> {
  let body: Partial<ApiError> | null = null
  try {
    body = (await res.json()) as Partial<ApiError>
  } catch {
    body = null
  }
  const message =
    typeof body?.error === 'string' && body.error
      ? body.error
      : `The host answered ${res.status} ${res.statusText || ''}`.trim()
  return new ApiRequestError(res.status, body?.code ?? 'INTERNAL', message, body?.details)
}

export async function rawRequest(path: string, options: RequestOptions = {}): Promise<Response> {
  const bearer = options.bearer === undefined ? deviceKeyStorage.get() : options.bearer
  const headers: Record<string, string> = {
    accept: 'application/json',
    ...authHeaders(bearer),
    ...options.headers,
  }
  if (options.body !== undefined) headers['content-type'] = 'application/json'
  let res: Response
  try {
    res = await fetch(path, {
      method: options.method ?? 'GET',
      headers,
      body: options.body === undefined ? undefined : JSON.stringify(options.body),
      credentials: 'same-origin',
      signal: options.signal,
    })
  } catch (err) {
    if ((err as Error)?.name === 'AbortError') throw err
    throw new ApiRequestError(0, 'NETWORK', 'Cannot reach the host; check the connection and try again')
  }
  if (!res.ok) throw await errorFrom(res)
  return res
}

export async function request<T>(path: string, options: RequestOptions = {}): Promise<T> {
  const res = await rawRequest(path, options)
  if (res.status === 204) return undefined as T
  return (await res.json()) as T
}

/** Reads an NDJSON body line by line; a malformed line is skipped rather than ending the stream. */
export async function* readNdjson<T>(res: Response): AsyncGenerator<T> {
  if (!res.body) return
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader()
  let buffer = ''
  try {
    for (;;) {
      const { value, done } = await reader.read()
      if (done) break
      buffer += value
      let nl = buffer.indexOf('\n')
      while (nl >= 0) {
        const line = buffer.slice(0, nl).trim()
        buffer = buffer.slice(nl + 1)
        if (line) {
          const parsed = parseLine<T>(line)
          if (parsed !== undefined) yield parsed
        }
        nl = buffer.indexOf('\n')
      }
    }
    const rest = buffer.trim()
    if (rest) {
      const parsed = parseLine<T>(rest)
      if (parsed !== undefined) yield parsed
    }
  } finally {
    reader.releaseLock()
  }
}

function parseLine<T>(line: string): T | undefined {
  try {
    return JSON.parse(line) as T
  } catch {
    return undefined
  }
}

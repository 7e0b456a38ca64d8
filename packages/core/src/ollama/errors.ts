import { SharedLLMError } from '../errors'

/** Node's fetch hides the socket error in `cause` (`ECONNREFUSED`, `ECONNRESET`, `UND_ERR_SOCKET`...). */
export function socketErrorCode(err: unknown): string | undefined {
  let e: unknown = err
  for (let i = 0; i < 4 && e && typeof e === 'object'; i++) {
    const code = (e as { code?: unknown }).code
    if (typeof code === 'string') return code
    e = (e as { cause?: unknown }).cause
  }
  return undefined
}

/** A failure to talk to Ollama at all (nothing answered, the connection broke, it timed out, we aborted). */
export function connectionError(
  err: unknown,
  where: { host: string; method: string; path: string },
  why: { cancelled?: boolean; timedOutMs?: number } = {},
): SharedLLMError {
  if (err instanceof SharedLLMError) return err
  const what = `${where.method} ${where.path}`
  const details = { host: where.host, path: where.path }
  if (why.cancelled) {
    return new SharedLLMError('CANCELLED', `${what} to Ollama was cancelled`, { cause: err, details })
  }
  if (why.timedOutMs !== undefined) {
    return new SharedLLMError(
      'TIMEOUT',
      `Ollama at ${where.host} did not answer ${what} within ${why.timedOutMs} ms`,
      { cause: err, details },
    )
  }
  const code = socketErrorCode(err)
  const reason =
    code === 'ECONNREFUSED'
      ? // The advice (start it, or turn on auto_start_ollama) depends on settings this layer does not know.
        'connection refused: Ollama is not running there'
      : `${code ?? (err instanceof Error ? err.message : String(err))}`
  return new SharedLLMError('UPSTREAM_UNAVAILABLE', `Ollama at ${where.host} is not reachable (${reason})`, {
    cause: err,
    details: { ...details, ...(code ? { errno: code } : {}) },
  })
}

/** Maps a non-2xx answer from Ollama to a core error; `body` is its text (JSON `{"error":…}` or plain). */
export function httpError(
  status: number,
  body: string,
  where: { host: string; method: string; path: string },
): SharedLLMError {
  let upstream: string | undefined
  try {
    const parsed = JSON.parse(body) as unknown
    if (parsed && typeof parsed === 'object' && typeof (parsed as { error?: unknown }).error === 'string') {
      upstream = (parsed as { error: string }).error
    }
  } catch {
    // plain text, e.g. Go's `404 page not found`
  }
  const what = `${where.method} ${where.path}`
  const text = (upstream ?? body).trim().slice(0, 500)
  const details = { status, path: where.path, upstream: text }
  if (status === 404 && upstream !== undefined && /model .* not found/i.test(upstream)) {
    return new SharedLLMError('MODEL_NOT_FOUND', `${upstream} (pull it first)`, { details })
  }
  if (status === 404 && upstream === undefined) {
    return new SharedLLMError(
      'UPSTREAM_ERROR',
      `Ollama at ${where.host} does not serve ${what} (${text || '404'}); it may be too old, or not Ollama`,
      { details },
    )
  }
  if (status === 404) return new SharedLLMError('NOT_FOUND', `Ollama: ${text}`, { details })
  if (status === 400)
    return new SharedLLMError('BAD_REQUEST', `Ollama rejected ${what}: ${text}`, { details })
  return new SharedLLMError('UPSTREAM_ERROR', `Ollama answered ${what} with ${status}: ${text}`, { details })
}

/** The gateway's wording for Ollama not answering a forwarded request (the node:http transport's errors). */
export function unreachable(base: string, err: unknown): SharedLLMError {
  const code = (err as { code?: unknown } | undefined)?.code
  const why =
    code === 'ECONNREFUSED'
      ? 'connection refused'
      : typeof code === 'string'
        ? code
        : err instanceof Error
          ? err.message
          : String(err)
  return new SharedLLMError(
    'UPSTREAM_UNAVAILABLE',
    `Ollama is not running at ${base} (${why}); the host owner can start it with \`ollama serve\` or turn on auto_start_ollama`,
    { cause: err, details: typeof code === 'string' ? { errno: code } : undefined },
  )
}

/** An Ollama 5xx on a forwarded request, passed on as 502 with Ollama's own message. */
export function upstreamFailed(status: number, text: string): SharedLLMError {
  let message = text.trim()
  try {
    const parsed = JSON.parse(text) as { error?: unknown }
    if (typeof parsed.error === 'string') message = parsed.error
    else if (parsed.error && typeof (parsed.error as { message?: unknown }).message === 'string') {
      message = (parsed.error as { message: string }).message
    }
  } catch {
    // plain text
  }
  return new SharedLLMError(
    'UPSTREAM_ERROR',
    `Ollama failed (${status}): ${message.slice(0, 500) || 'no message'}`,
    {
      details: { upstream_status: status },
    },
  )
}

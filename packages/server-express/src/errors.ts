import { isSharedLLMError, type Logger, SharedLLMError, sendGatewayError } from '@sharedllm/core'
import type { ErrorRequestHandler, Response } from 'express'

/** Maps body-parser's errors (bad JSON, oversized body, wrong charset) to SharedLLMErrors. */
function fromBodyParser(err: unknown): SharedLLMError | undefined {
  const type = (err as { type?: unknown } | null)?.type
  if (typeof type !== 'string') return undefined
  switch (type) {
    case 'entity.parse.failed':
      return new SharedLLMError('BAD_REQUEST', 'body: is not valid JSON', { details: { field: 'body' } })
    case 'entity.too.large': {
      const limit = (err as { limit?: number }).limit
      return new SharedLLMError('PAYLOAD_TOO_LARGE', `body: larger than the ${limit ?? ''} byte limit`, {
        details: { field: 'body', limit },
      })
    }
    case 'encoding.unsupported':
    case 'charset.unsupported':
      return new SharedLLMError('BAD_REQUEST', 'body: unsupported encoding; send UTF-8 JSON')
    case 'request.aborted':
      return new SharedLLMError('BAD_REQUEST', 'request aborted by the client')
    default:
      return new SharedLLMError('BAD_REQUEST', 'body: could not be read')
  }
}

/** Express's own 4xx errors (a path with broken percent-encoding) keep their status class. */
function fromHttpError(err: unknown): SharedLLMError | undefined {
  const status = (err as { status?: unknown } | null)?.status
  if (typeof status !== 'number' || status < 400 || status >= 500) return undefined
  return new SharedLLMError(
    'BAD_REQUEST',
    status === 400 ? 'malformed request (check the URL encoding)' : 'request refused',
  )
}

/** Writes `err` with core's one error writer (same body, status and Retry-After rule as the gateway). */
export function sendError(res: Response, err: SharedLLMError): void {
  sendGatewayError(res, 'ollama', err)
}

/**
 * The one error handler: a SharedLLMError goes out with its status and JSON; anything else is logged and
 * answered with a generic 500, so internals (paths, SQL, secrets) never reach a client.
 */
export function errorHandler(log: Logger): ErrorRequestHandler {
  return (err, req, res, _next) => {
    const known = isSharedLLMError(err) ? err : (fromBodyParser(err) ?? fromHttpError(err))
    if (known) {
      sendError(res, known)
      return
    }
    log.error({ err, method: req.method, path: req.path }, 'unhandled error in request')
    sendError(res, new SharedLLMError('INTERNAL', 'internal error; see the host log'))
  }
}

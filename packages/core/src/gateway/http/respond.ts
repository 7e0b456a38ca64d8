import { SharedLLMError } from '../../errors'
import type { ServerResponse } from 'node:http'
import type { GatewayApi } from './routes'

/** OpenAI's `error.type` for our statuses, so OpenAI clients classify the failure. */
function openaiType(status: number): string {
  if (status === 401) return 'authentication_error'
  if (status === 403) return 'permission_error'
  if (status === 404) return 'not_found_error'
  if (status === 429) return 'rate_limit_error'
  if (status >= 500) return 'api_error'
  return 'invalid_request_error'
}

/**
 * The error body for a route's API. Ollama clients read `{error: string}`; OpenAI clients read
 * `{error: {message, type, code}}`. Both carry our `code` at the top level too.
 */
export function errorBody(api: GatewayApi, err: SharedLLMError): Record<string, unknown> {
  if (api === 'ollama') return err.toJSON()
  return {
    error: {
      message: err.message,
      type: openaiType(err.status),
      param: typeof err.details?.field === 'string' ? err.details.field : null,
      code: err.code,
    },
    code: err.code,
    ...(err.details ? { details: err.details } : {}),
  }
}

/**
 * The Retry-After an error carries (whole seconds, at least 1): the one rule for the gateway, the REST API
 * and everything else that answers a refusal.
 */
export function retryAfterSeconds(err: SharedLLMError): number | undefined {
  // `retry_after` (rate and slot limits) or `retry_after_s` (the queue, budgets, hours).
  const retry = err.details?.retry_after ?? err.details?.retry_after_s
  if (typeof retry !== 'number' || !Number.isFinite(retry)) return undefined
  return Math.max(1, Math.ceil(retry))
}

/**
 * The one error writer (the gateway, and the REST API through it): `err` in the route's API shape, with
 * Retry-After and WWW-Authenticate where they apply; if the response already started, the connection is cut.
 */
export function sendGatewayError(res: ServerResponse, api: GatewayApi, err: SharedLLMError): void {
  if (res.headersSent) {
    res.destroy()
    return
  }
  const body = JSON.stringify(errorBody(api, err))
  const headers: Record<string, string | number> = {
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': Buffer.byteLength(body),
    'Cache-Control': 'no-store',
  }
  if (err.code === 'UNAUTHORIZED') headers['WWW-Authenticate'] = 'Bearer realm="sharedllm"'
  const retry = retryAfterSeconds(err)
  if (retry !== undefined) headers['Retry-After'] = retry
  res.writeHead(err.status, headers)
  res.end(body)
}

export function sendJson(res: ServerResponse, status: number, value: unknown): void {
  const body = JSON.stringify(value)
  res.writeHead(status, {
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': Buffer.byteLength(body),
    'Cache-Control': 'no-store',
  })
  res.end(body)
}

/** Any thrown value as a SharedLLMError; unexpected ones become INTERNAL without leaking their text. */
export function asGatewayError(err: unknown): SharedLLMError {
  if (err instanceof SharedLLMError) return err
  return new SharedLLMError('INTERNAL', 'the gateway failed to handle this request; see the host log', {
    cause: err,
  })
}

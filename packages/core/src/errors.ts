/**
 * The one error type of sharedLLM. Every failure a caller can act on has a code; the code decides the HTTP
 * status through one exhaustive table, so a new code without a status does not compile.
 */
export type ErrorCode =
  | 'BAD_REQUEST'
  | 'VALIDATION'
  | 'UNAUTHORIZED'
  | 'FORBIDDEN'
  | 'NOT_FOUND'
  | 'METHOD_NOT_ALLOWED'
  | 'CONFLICT'
  | 'GONE'
  | 'PAYLOAD_TOO_LARGE'
  | 'REQUEST_TIMEOUT'
  | 'CAPACITY_EXCEEDED'
  | 'RATE_LIMITED'
  | 'MODEL_NOT_FOUND'
  | 'MODEL_IN_USE'
  | 'PULL_FAILED'
  | 'CANCELLED'
  | 'TIMEOUT'
  | 'UPSTREAM_UNAVAILABLE'
  | 'UPSTREAM_ERROR'
  | 'PROVIDER_FAILED'
  | 'STORE_CORRUPT'
  | 'STORE_UNREADABLE'
  | 'CERTIFICATE_MISMATCH'
  | 'INTERNAL'

export const httpStatusByCode: Record<ErrorCode, number> = {
  BAD_REQUEST: 400,
  VALIDATION: 400,
  UNAUTHORIZED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  METHOD_NOT_ALLOWED: 405,
  CONFLICT: 409,
  GONE: 410,
  PAYLOAD_TOO_LARGE: 413,
  REQUEST_TIMEOUT: 408,
  CAPACITY_EXCEEDED: 422,
  RATE_LIMITED: 429,
  MODEL_NOT_FOUND: 404,
  MODEL_IN_USE: 409,
  PULL_FAILED: 502,
  CANCELLED: 499,
  TIMEOUT: 504,
  UPSTREAM_UNAVAILABLE: 503,
  UPSTREAM_ERROR: 502,
  PROVIDER_FAILED: 500,
  STORE_CORRUPT: 500,
  STORE_UNREADABLE: 500,
  // A peer presented a certificate that does not chain to the CA pinned for it.
  CERTIFICATE_MISMATCH: 502,
  INTERNAL: 500,
}

export interface SharedLLMErrorOptions {
  cause?: unknown
  /** Extra machine-readable facts (field name, conflicting ids, retry-after seconds). Never secrets. */
  details?: Record<string, unknown>
}

export class SharedLLMError extends Error {
  override readonly name = 'SharedLLMError'
  readonly code: ErrorCode
  readonly details: Record<string, unknown> | undefined

  constructor(code: ErrorCode, message: string, options: SharedLLMErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.code = code
    this.details = options.details
  }

  get status(): number {
    return httpStatusByCode[this.code]
  }

  toJSON(): { error: string; code: ErrorCode; details?: Record<string, unknown> } {
    return { error: this.message, code: this.code, ...(this.details ? { details: this.details } : {}) }
  }
}

export function isSharedLLMError(err: unknown, code?: ErrorCode): err is SharedLLMError {
  return err instanceof SharedLLMError && (code === undefined || err.code === code)
}

/** A short readable message for any thrown value, for logs and events. */
export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message
  return String(err)
}

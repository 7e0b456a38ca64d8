import pino from 'pino'

/** The part of pino's logger that core uses, so an embedding app can pass its own. */
export interface Logger {
  debug(obj: unknown, msg?: string): void
  info(obj: unknown, msg?: string): void
  warn(obj: unknown, msg?: string): void
  error(obj: unknown, msg?: string): void
  child(bindings: Record<string, unknown>): Logger
}

const SECRET_KEYS = [
  'token',
  'secret',
  'device_key',
  'api_key',
  'admin_secret',
  'claim_secret',
  'pairing_code',
  'session',
  'password',
  'authorization',
  'cookie',
]

/**
 * The one list of log fields whose values never reach a log line: keys, secrets, claim secrets, sessions
 * and the authorization and cookie headers, at the top level, one level down and in request/response
 * headers. The bare `key` is not in it: it names settings ("ignoring invalid stored setting") and must
 * stay readable.
 */
export const REDACT_PATHS: readonly string[] = [
  ...SECRET_KEYS,
  ...SECRET_KEYS.map((k) => `*.${k}`),
  'req.headers.authorization',
  'req.headers.cookie',
  'headers.authorization',
  'headers.cookie',
  '*.headers.authorization',
  '*.headers.cookie',
  'res.headers["set-cookie"]',
]

export const REDACT_CENSOR = '[redacted]'

export function createLogger(level = process.env.SHAREDLLM_LOG_LEVEL ?? 'warn'): Logger {
  return pino({ level, base: undefined, redact: { paths: [...REDACT_PATHS], censor: REDACT_CENSOR } })
}

export const silentLogger: Logger = pino({ level: 'silent' })

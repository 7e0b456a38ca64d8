import pino from 'pino'

/** The part of pino's logger that core uses, so an embedding app can pass its own. */
export interface Logger {
  debug(obj: unknown, msg?: string): void
  info(obj: unknown, msg?: string): void
  warn(obj: unknown, msg?: string): void
  error(obj: unknown, msg?: string): void
  child(bindings: Record<string, unknown>): Logger
}

export function createLogger(level = process.env.SHAREDLLM_LOG_LEVEL ?? 'warn'): Logger {
  return pino({
    level,
    base: undefined,
    redact: ['token', 'secret', 'key', '*.token', '*.secret', '*.device_key'],
  })
}

export const silentLogger: Logger = pino({ level: 'silent' })

import { type Logger, REDACT_CENSOR, REDACT_PATHS } from '@sharedllm/core'
import pino from 'pino'
import pretty from 'pino-pretty'

export interface ServerLoggerOptions {
  /** @default $SHAREDLLM_LOG_LEVEL or 'info' */
  level?: string
  /** Human-readable lines instead of JSON. @default stdout is a TTY */
  pretty?: boolean
}

/** pino for the CLI: JSON lines for machines, pretty lines on a terminal. */
export function createServerLogger(opts: ServerLoggerOptions = {}): Logger {
  const level = opts.level ?? process.env.SHAREDLLM_LOG_LEVEL ?? 'info'
  const options = { level, base: undefined, redact: { paths: [...REDACT_PATHS], censor: REDACT_CENSOR } }
  if (opts.pretty ?? process.stdout.isTTY === true) {
    return pino(
      options,
      pretty({ colorize: true, translateTime: 'HH:MM:ss', ignore: 'pid,hostname', sync: true }),
    )
  }
  return pino(options)
}

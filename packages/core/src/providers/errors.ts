import { SharedLLMError } from '../errors'

/** The error a host's `exec` rejects with when the command is not installed. */
export function commandMissing(cmd: string, cause?: unknown): SharedLLMError {
  return new SharedLLMError('NOT_FOUND', `command '${cmd}' is not installed or not on PATH`, {
    cause,
    details: { code: 'ENOENT', command: cmd },
  })
}

/** True for a command that is not installed, and for a file or directory that does not exist. */
export function isCommandMissing(err: unknown): boolean {
  if (err instanceof SharedLLMError) return err.code === 'NOT_FOUND' && err.details?.code === 'ENOENT'
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === 'ENOENT'
}

import { type Hub, type Principal, SharedLLMError } from '@sharedllm/core'
import type { IncomingMessage } from 'node:http'

/** One message for a missing, unknown or revoked key, so a caller cannot tell which it was. */
export const UNAUTHORIZED_MESSAGE =
  'a valid key is required: send Authorization: Bearer <device key> (the key may be missing, unknown or revoked)'

export function unauthorized(): SharedLLMError {
  return new SharedLLMError('UNAUTHORIZED', UNAUTHORIZED_MESSAGE)
}

/** The token of an `Authorization: Bearer <token>` header, or null. Cookies are never read here. */
export function bearerToken(req: IncomingMessage): string | null {
  const header = req.headers.authorization
  if (typeof header !== 'string') return null
  const m = /^Bearer[ \t]+(\S{1,512})[ \t]*$/i.exec(header)
  return m ? (m[1] as string) : null
}

/** The caller, or throws the one 401. */
export async function authenticate(hub: Hub, req: IncomingMessage): Promise<Principal> {
  const principal = await hub.access.authenticate(bearerToken(req))
  if (!principal) throw unauthorized()
  return principal
}

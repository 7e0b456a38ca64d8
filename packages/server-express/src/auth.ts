import type { IncomingMessage } from 'node:http'
import {
  type AuthResult,
  authenticateRequest,
  bearerToken,
  checkCookieOrigin,
  unauthorized as coreUnauthorized,
  type Hub,
  isAdmin,
  isOwner,
  type Principal,
  SharedLLMError,
} from '@sharedllm/core'
import type { NextFunction, Request, RequestHandler, Response } from 'express'

export { type AuthResult, type AuthVia, cookieOf, SESSION_COOKIE, sourceOf } from '@sharedllm/core'

/** The REST API's 401 (the one `unauthorized` of core, worded for the dashboard). */
export function unauthorized(): SharedLLMError {
  return coreUnauthorized('admin')
}

export function bearerOf(req: IncomingMessage): string | undefined {
  return bearerToken(req) ?? undefined
}

/** Who sent this request: core's one `authenticateRequest` (bearer token or the owner's session cookie). */
export function authenticateWith(hub: Hub, req: IncomingMessage): Promise<AuthResult | null> {
  return authenticateRequest(hub, req)
}

const authCache = new WeakMap<IncomingMessage, Promise<AuthResult | null>>()

export function hubOf(req: Request): Hub {
  const hub = req.app.locals.hub as Hub | undefined
  if (!hub) throw new SharedLLMError('INTERNAL', 'no hub on this app; build it with createApp(hub)')
  return hub
}

/** The caller's auth, computed once per request (the gateway and the API share it). */
export function authResult(req: Request): Promise<AuthResult | null> {
  let p = authCache.get(req)
  if (!p) {
    p = authenticateWith(hubOf(req), req)
    authCache.set(req, p)
  }
  return p
}

/** Who sent this request (bearer or session cookie), or null. For the gateway and the API. */
export async function authenticate(req: Request): Promise<Principal | null> {
  return (await authResult(req))?.principal ?? null
}

function guard(check: (result: AuthResult) => void): RequestHandler {
  return (req: Request, _res: Response, next: NextFunction) => {
    authResult(req).then(
      (result) => {
        if (!result) return next(unauthorized())
        try {
          checkCookieOrigin(req, result)
          check(result)
          next()
        } catch (err) {
          next(err)
        }
      },
      (err) => next(err),
    )
  }
}

/** The owner (secret or session) or a device whose role is admin; else 401 (nobody) or 403 (a device). */
export const requireAdmin: RequestHandler = guard((result) => {
  if (!isAdmin(result.principal)) {
    throw new SharedLLMError('FORBIDDEN', 'this needs the host admin; a device key is not enough')
  }
})

/**
 * The owner (secret or session), or an admin-role device the owner granted "manage": settings, roles and
 * other devices' keys. An admin-role device without the grant gets 403.
 */
export const requireOwner: RequestHandler = guard((result) => {
  if (!isOwner(result.principal)) {
    throw new SharedLLMError(
      'FORBIDDEN',
      isAdmin(result.principal)
        ? 'this needs the host\'s owner (admin secret or owner session); an admin-role device needs the owner\'s "manage" grant'
        : 'this needs the host admin; a device key is not enough',
    )
  }
})

/** Anyone with a valid credential: the admin or an approved device. */
export const requirePrincipal: RequestHandler = guard(() => {})

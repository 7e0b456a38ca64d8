import type { IncomingMessage } from 'node:http'
import { type Hub, isAdmin, type Principal, SharedLLMError } from '@sharedllm/core'
import type { NextFunction, Request, RequestHandler, Response } from 'express'
import { isSameOrigin } from './host-check'

export const SESSION_COOKIE = 'sllm_session'

/** How the caller proved who it is; `device` is a device key whose role may or may not be admin. */
export type AuthVia = 'cookie' | 'bearer' | 'device'

export interface AuthResult {
  principal: Principal
  via: AuthVia
}

// Devices see this too (a revoked key gets it), so it names no admin credential: a device uses its key.
const UNAUTHORIZED_MESSAGE =
  'not signed in, or the key is no longer valid: a device sends its key (Authorization: Bearer <key>); the host owner logs in on the dashboard'

/** Missing and wrong credentials get this same answer, so a caller cannot tell which it was. */
export function unauthorized(): SharedLLMError {
  return new SharedLLMError('UNAUTHORIZED', UNAUTHORIZED_MESSAGE)
}

export function bearerOf(req: IncomingMessage): string | undefined {
  const header = req.headers.authorization
  if (!header) return undefined
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header)
  return m?.[1]
}

export function cookieOf(req: IncomingMessage, name: string): string | undefined {
  const header = req.headers.cookie
  if (!header || header.length > 8192) return undefined
  for (const part of header.split(';')) {
    const eq = part.indexOf('=')
    if (eq < 0) continue
    if (part.slice(0, eq).trim() !== name) continue
    const value = part.slice(eq + 1).trim()
    try {
      return decodeURIComponent(value)
    } catch {
      return undefined
    }
  }
  return undefined
}

/**
 * Who sent this request: a bearer token (admin secret or device key) or the admin session cookie. A bearer
 * token that is present but wrong is not retried as a cookie: the caller meant the token.
 */
export async function authenticateWith(hub: Hub, req: IncomingMessage): Promise<AuthResult | null> {
  const bearer = bearerOf(req)
  if (bearer !== undefined || req.headers.authorization) {
    const principal = bearer ? await hub.access.authenticate(bearer) : null
    if (!principal) return null
    return { principal, via: principal.kind === 'admin' ? 'bearer' : 'device' }
  }
  const session = cookieOf(req, SESSION_COOKIE)
  if (session && session.length <= 200 && (await hub.admin.verifySession(session))) {
    return { principal: { kind: 'admin' }, via: 'cookie' }
  }
  return null
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

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS'])

/**
 * A cookie is sent by the browser on its own, so an unsafe request authenticated only by the cookie must
 * come from a page of this origin (CSRF guard on top of SameSite=Strict).
 */
function checkCookieOrigin(req: Request, result: AuthResult): void {
  if (result.via !== 'cookie' || SAFE_METHODS.has(req.method)) return
  const origin = req.headers.origin
  const host = req.headers.host
  if (!origin || !host || !isSameOrigin(origin, host, req.secure)) {
    throw new SharedLLMError('FORBIDDEN', 'cross-origin request refused: Origin must be this host')
  }
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

/** Anyone with a valid credential: the admin or an approved device. */
export const requirePrincipal: RequestHandler = guard(() => {})

import type { IncomingMessage } from 'node:http'
import type { TLSSocket } from 'node:tls'
import type { AccessService, Principal } from '../../access/access'
import type { AdminAuth } from '../../access/admin'
import { SharedLLMError } from '../../errors'
import { canonicalIp } from '../../tls/addresses'

/** The owner's dashboard session cookie (HttpOnly, SameSite=Strict). */
export const SESSION_COOKIE = 'sllm_session'

/** How the caller proved who it is; `device` is a device key whose role may or may not be admin. */
export type AuthVia = 'cookie' | 'bearer' | 'device'

export interface AuthResult {
  principal: Principal
  via: AuthVia
}

const MESSAGES = {
  gateway:
    'a valid key is required: send Authorization: Bearer <device key> (the key may be missing, unknown or revoked)',
  // Read by devices too (a revoked phone, a script with an old key): it must not talk to them about admin secrets.
  admin:
    'not signed in, or the key is not valid: the host owner logs in on the dashboard; a device sends its own key (Authorization: Bearer <key>), which may be unknown, rotated or revoked',
} as const

/**
 * The one 401: missing, unknown and revoked credentials get the same answer, so a caller cannot tell which
 * it was. `gateway` speaks to API clients (a device key), `admin` to the dashboard's REST API.
 */
export function unauthorized(audience: keyof typeof MESSAGES = 'gateway'): SharedLLMError {
  return new SharedLLMError('UNAUTHORIZED', MESSAGES[audience])
}

/** The token of an `Authorization: Bearer <token>` header, or null. */
export function bearerToken(req: IncomingMessage): string | null {
  const header = req.headers.authorization
  if (typeof header !== 'string') return null
  const m = /^Bearer[ \t]+(\S{1,512})[ \t]*$/i.exec(header)
  return m ? (m[1] as string) : null
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

/** The caller's address in one spelling (IPv4-mapped IPv6 as IPv4), for limits, backoff and records. */
export function sourceOf(req: IncomingMessage): string {
  return canonicalIp(req.socket?.remoteAddress ?? '') ?? 'unknown'
}

/** Whether `origin` is this host as the client reached it (scheme, name and port). */
export function isSameOrigin(origin: string, host: string | undefined, secure: boolean): boolean {
  if (!host) return false
  try {
    const o = new URL(origin)
    const self = new URL(`${secure ? 'https' : 'http'}://${host}`)
    return o.protocol === self.protocol && o.host === self.host
  } catch {
    return false
  }
}

export function isSecure(req: IncomingMessage): boolean {
  return (req.socket as TLSSocket | undefined)?.encrypted === true
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS'])

/**
 * A cookie is sent by the browser on its own, so an unsafe request authenticated only by the cookie must
 * come from a page of this origin (CSRF guard on top of SameSite=Strict).
 */
export function checkCookieOrigin(req: IncomingMessage, result: AuthResult): void {
  if (result.via !== 'cookie' || SAFE_METHODS.has(req.method ?? 'GET')) return
  const origin = req.headers.origin
  if (!origin || !isSameOrigin(origin, req.headers.host, isSecure(req))) {
    throw new SharedLLMError('FORBIDDEN', 'cross-origin request refused: Origin must be this host')
  }
}

/**
 * Who sent this request: a bearer token (admin secret or device key) or the owner's session cookie. A bearer
 * header that is present but wrong is not retried as a cookie: the caller meant the token.
 */
export async function authenticateRequest(
  hub: { access: AccessService; admin: AdminAuth },
  req: IncomingMessage,
): Promise<AuthResult | null> {
  if (req.headers.authorization !== undefined) {
    const token = bearerToken(req)
    // The caller's address keys the backoff on failed admin-secret guesses (per source, then LAN-wide).
    const principal = token ? await hub.access.authenticate(token, sourceOf(req)) : null
    if (!principal) return null
    return { principal, via: principal.kind === 'admin' ? 'bearer' : 'device' }
  }
  const session = cookieOf(req, SESSION_COOKIE)
  if (session && session.length <= 200 && (await hub.admin.verifySession(session))) {
    return { principal: { kind: 'admin' }, via: 'cookie' }
  }
  return null
}

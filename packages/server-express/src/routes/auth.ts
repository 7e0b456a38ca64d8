import { type SessionResponse, SharedLLMError } from '@sharedllm/core'
import type { Request, Response } from 'express'
import { z } from 'zod'
import { cookieOf, SESSION_COOKIE, sourceOf, unauthorized } from '../auth'
import { type AnyRoute, route } from './define'

export const loginSchema = z.strictObject({
  secret: z.string().trim().min(1, 'must not be empty').max(512, 'must be at most 512 characters'),
})

function sessionCookie(req: Request, value: string, maxAgeMs: number): string {
  const parts = [
    `${SESSION_COOKIE}=${value}`,
    'Path=/',
    'HttpOnly',
    'SameSite=Strict',
    `Max-Age=${Math.floor(maxAgeMs / 1000)}`,
  ]
  if (req.secure) parts.push('Secure')
  return parts.join('; ')
}

/** Exchanges the admin secret or a one-time login token for the session cookie. */
export async function startSession(req: Request, res: Response, credential: string): Promise<void> {
  const hub = req.app.locals.hub
  let session: { session: string; expiresAt: number }
  try {
    session = await hub.admin.login(credential, sourceOf(req))
  } catch (err) {
    if (err instanceof SharedLLMError && err.code === 'UNAUTHORIZED') {
      // One answer for a wrong secret and a used or expired link, so neither can be told apart.
      throw new SharedLLMError(
        'UNAUTHORIZED',
        'that admin secret or login link did not work: a login link works once and for 24 hours; restart the host for a new one, or paste the admin secret',
      )
    }
    throw err
  }
  res.setHeader('Set-Cookie', sessionCookie(req, session.session, session.expiresAt - Date.now()))
}

export const authRoutes: AnyRoute[] = [
  route({
    method: 'post',
    path: '/api/auth/login',
    access: 'public',
    summary: 'Exchange the admin secret (or a one-time login token) for an HttpOnly session cookie',
    body: loginSchema,
    handler: async ({ req, res, body }): Promise<SessionResponse> => {
      await startSession(req, res, body.secret)
      return { kind: 'admin', via: 'cookie' }
    },
  }),
  route({
    method: 'post',
    path: '/api/auth/logout',
    access: 'public',
    summary: 'End the admin session and clear its cookie',
    handler: async ({ req, res, hub }) => {
      const session = cookieOf(req, SESSION_COOKIE)
      if (session && session.length <= 200) await hub.admin.logout(session)
      res.setHeader('Set-Cookie', sessionCookie(req, '', 0))
      return undefined
    },
  }),
  route({
    method: 'get',
    path: '/api/auth/session',
    access: 'public',
    summary: 'Who the caller is: the admin, a device, or 401',
    handler: async ({ hub, principal, via }): Promise<SessionResponse> => {
      if (!principal || !via) throw unauthorized()
      if (principal.kind === 'admin') return { kind: 'admin', via }
      // A device key: fresh from the store, so a role change shows at once.
      const device = await hub.devices.get(principal.device.id)
      return { kind: 'device', device, role: principal.role }
    },
  }),
]

import { SharedLLMError } from '@sharedllm/core'
import type { HostTls } from './tls'
import { httpsUrls } from './tls'
import type { RequestHandler } from 'express'
import { sendError } from './errors'

// naive-ui injects its styles at runtime, hence 'unsafe-inline' for styles only; scripts stay 'self'.
const CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data: blob:",
  "font-src 'self' data:",
  "connect-src 'self'",
  "worker-src 'self'",
  "manifest-src 'self'",
  "object-src 'none'",
  "base-uri 'self'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ')

/**
 * The standard hardening headers on every answer. Never HSTS: it would upgrade `http://box.local:8080` to
 * https on the same port, where nothing speaks TLS, and lock out a phone that has not trusted the CA yet.
 */
export const securityHeaders: RequestHandler = (_req, res, next) => {
  res.setHeader('X-Content-Type-Options', 'nosniff')
  res.setHeader('X-Frame-Options', 'DENY')
  res.setHeader('Referrer-Policy', 'no-referrer')
  res.setHeader('Cross-Origin-Opener-Policy', 'same-origin')
  res.setHeader('Cross-Origin-Resource-Policy', 'same-origin')
  res.setHeader('Permissions-Policy', 'camera=(), microphone=(), geolocation=()')
  res.setHeader('Content-Security-Policy', CSP)
  next()
}

/**
 * CORS only for origins the owner listed (none by default). Credentials are never allowed cross-origin:
 * a listed origin must send a bearer token.
 */
export function cors(origins: string[]): RequestHandler {
  const allowed = new Set(origins.map((o) => o.replace(/\/+$/, '').toLowerCase()))
  return (req, res, next) => {
    const origin = req.headers.origin
    if (!origin || !allowed.has(origin.toLowerCase())) return next()
    res.setHeader('Access-Control-Allow-Origin', origin)
    res.setHeader('Vary', 'Origin')
    if (req.method === 'OPTIONS' && req.headers['access-control-request-method']) {
      res.setHeader('Access-Control-Allow-Methods', 'GET, POST, PUT, PATCH, DELETE')
      res.setHeader('Access-Control-Allow-Headers', 'Authorization, Content-Type, X-Claim-Secret')
      res.setHeader('Access-Control-Max-Age', '600')
      res.status(204).end()
      return
    }
    next()
  }
}

/**
 * A request must arrive in full within `ms` (headers and body): a slow-body connection that trickles a byte
 * now and then is answered 408 and closed. Only the request is timed, never the answer, so streams and
 * pulls run as long as they need.
 */
export function bodyDeadline(ms: number): RequestHandler {
  return (req, res, next) => {
    if (req.complete) return next()
    const timer = setTimeout(() => {
      if (req.complete) return
      res.setHeader('Connection', 'close')
      if (!res.headersSent) {
        sendError(
          res,
          new SharedLLMError(
            'REQUEST_TIMEOUT',
            `the request did not arrive within ${Math.round(ms / 1000)} s`,
          ),
        )
      }
      // The rest of the body will never be read: drop the connection once the answer is out.
      res.once('finish', () => req.socket.destroy())
      setTimeout(() => req.socket.destroy(), 1000).unref()
    }, ms)
    timer.unref()
    const done = () => clearTimeout(timer)
    req.once('end', done)
    req.once('close', done)
    res.once('close', done)
    next()
  }
}

/** What plain HTTP still serves with `--https-only`: getting a device to trust the host, and joining. */
const HTTP_ALLOWED: Array<{ method: string; path: RegExp }> = [
  { method: 'POST', path: /^\/api\/join$/ },
  { method: 'GET', path: /^\/api\/join\/[^/]+$/ },
  { method: 'GET', path: /^\/api\/tls$/ },
  { method: 'GET', path: /^\/ca\.(crt|mobileconfig)$/ },
  { method: 'GET', path: /^\/healthz$/ },
]
// The PWA shell and its assets (the join page lives there); never the API, the gateway, the socket or /login.
const NOT_SHELL = /^\/(api|ollama|v1|ws|login)(\/|$)/

/**
 * `--https-only`: a request over plain HTTP gets only the join flow and the certificate; anything else is a
 * 403 naming the HTTPS address, before authentication runs (no credential crosses the LAN in the clear).
 */
export function httpsOnlyGuard(tls: HostTls): RequestHandler {
  return (req, res, next) => {
    if (req.secure) return next()
    const method = req.method === 'HEAD' ? 'GET' : req.method
    const path = req.path
    if (HTTP_ALLOWED.some((a) => a.method === method && a.path.test(path))) return next()
    if ((method === 'GET' || req.method === 'OPTIONS') && !NOT_SHELL.test(path)) return next()
    const url = httpsUrls(tls, req.headers.host)[0]
    sendError(
      res,
      new SharedLLMError(
        'FORBIDDEN',
        `this host serves ${path.slice(0, 100)} over HTTPS only${url ? `: use ${url}` : ''} (install the host CA from /ca.crt first)`,
        url ? { details: { https_url: url } } : {},
      ),
    )
  }
}

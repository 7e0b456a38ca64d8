export { type AppOptions, createApp, type SharedLLMApp, VERSION } from './app'
export {
  type AuthResult,
  type AuthVia,
  authenticate,
  authenticateWith,
  authResult,
  requireAdmin,
  requirePrincipal,
  SESSION_COOKIE,
} from './auth'
export { errorHandler } from './errors'
export { HostAllowlist, hostOf, isSameOrigin } from './host-check'
export { listen, type ListenOptions, type RunningServer, reachableUrls } from './listen'
export { createServerLogger, type ServerLoggerOptions } from './logger'
export { buildOpenApi } from './openapi'
export type { Access, AnyRoute, RouteDef } from './routes/define'
export { HostTls, type HostTlsOptions, httpsUrls, sanHosts, tlsRoutes } from './tls'
export { WsHub, type WsOptions } from './ws'
export { joinHost, type JoinHostOptions } from './join-client'

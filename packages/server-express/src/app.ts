import { type Hub, isHostPath, type Logger, SharedLLMError } from '@sharedllm/core'
import { distDir } from '@sharedllm/pwa'
import express, { type Express, type Request, type Response } from 'express'
import pkg from '../package.json'
import { errorHandler, sendError } from './errors'
import { createGatewayRouter } from './gateway/index'
import { HostAllowlist } from './host-check'
import { buildOpenApi } from './openapi'
import { authRoutes, startSession } from './routes/auth'
import { type AnyRoute, mount, route } from './routes/define'
import { deviceRoutes } from './routes/devices'
import { joinRoutes } from './routes/join'
import { modelRoutes } from './routes/models'
import { peerRoutes } from './routes/peers'
import { roleRoutes } from './routes/roles'
import { settingRoutes } from './routes/settings'
import { systemRoutes } from './routes/system'
import { bodyDeadline, cors, httpsOnlyGuard, securityHeaders } from './security'
import { staticRouter } from './static'
import { type HostTls, sanHosts, tlsRoutes } from './tls'
import { WsHub, type WsOptions } from './ws'

export const VERSION: string = pkg.version

export interface AppOptions {
  /** Host names accepted besides localhost, the machine's names and addresses, and `allowed_hosts`. */
  allowedHosts?: string[]
  /** Origins allowed to call the API cross-origin with a bearer token. @default [] (no CORS) */
  corsOrigins?: string[]
  /** Largest JSON body of an /api request. @default '100kb' */
  bodyLimit?: string | number
  /** An /api request must arrive in full (headers and body) within this many ms, else 408. @default 60_000 */
  apiRequestTimeoutMs?: number
  /** Directory of the built PWA. @default `distDir` of `@sharedllm/pwa` */
  pwaDir?: string
  /** Logs unexpected errors. @default the hub's logger */
  logger?: Logger
  ws?: WsOptions
  /**
   * The host certificates when HTTPS is on: adds `/api/tls`, `/ca.crt`, `/ca.mobileconfig` and accepts every
   * name the certificate covers in Host. Without it those routes say HTTPS is off.
   */
  tls?: HostTls
  /**
   * `--https-only`: over plain HTTP only the join flow (the PWA shell, `/api/join`, its claim poll) and the
   * certificate (`/api/tls`, `/ca.crt`, `/ca.mobileconfig`) are served; everything else answers 403 with the
   * HTTPS address. Needs `tls`. @default false
   */
  httpsOnly?: boolean
}

export interface SharedLLMApp extends Express {
  readonly hub: Hub
  /** The WebSocket fan-out; `listen()` attaches it to the HTTP server's `upgrade` event. */
  readonly ws: WsHub
  readonly hosts: HostAllowlist
  /** Every REST route, as documented by /api/openapi.json. */
  readonly routes: AnyRoute[]
}

/** The Express app of a sharedLLM host: host guard, REST API, gateway, PWA. Translates HTTP to hub calls. */
export function createApp(hub: Hub, options: AppOptions = {}): SharedLLMApp {
  const log = options.logger ?? hub.log
  const tls = options.tls
  const hosts = new HostAllowlist(() => [
    ...(options.allowedHosts ?? []),
    ...hub.settings.get('allowed_hosts'),
    ...(tls ? sanHosts(tls.certs) : []),
  ])
  const app = express()
  app.disable('x-powered-by')
  app.set('etag', false)
  app.locals.hub = hub

  // DNS-rebinding guard before anything else runs.
  app.use((req, res, next) => {
    if (hosts.allowsRequest(req)) return next()
    sendError(
      res,
      new SharedLLMError('FORBIDDEN', 'Host header not allowed; add the name to the allowed_hosts setting'),
    )
  })
  app.use(securityHeaders)
  if (options.httpsOnly) {
    if (!tls) throw new SharedLLMError('VALIDATION', 'httpsOnly needs the host certificates (tls)')
    app.use(httpsOnlyGuard(tls))
  }
  if (options.corsOrigins?.length) app.use(cors(options.corsOrigins))
  // The gateway's paths (/ollama, /v1, /metrics) go straight to it: the REST router's route list is not
  // scanned on every inference request.
  app.use(createGatewayRouter(hub))
  app.use('/api', (_req, res, next) => {
    res.setHeader('Cache-Control', 'no-store')
    next()
  })
  app.use('/api', bodyDeadline(options.apiRequestTimeoutMs ?? 60_000))
  app.use('/api', express.json({ limit: options.bodyLimit ?? '100kb', strict: false }))

  const routes: AnyRoute[] = [
    ...systemRoutes(VERSION),
    ...authRoutes,
    ...joinRoutes,
    ...deviceRoutes,
    ...roleRoutes,
    ...settingRoutes,
    ...modelRoutes,
    ...peerRoutes,
    ...tlsRoutes(tls),
  ]
  const openapi = buildOpenApi(routes, VERSION)
  routes.push(
    route({
      method: 'get',
      path: '/api/openapi.json',
      access: 'admin',
      summary: 'This document',
      handler: () => openapi,
    }),
  )
  const api = express.Router()
  mount(api, hub, routes)
  app.use(api)

  // The printed one-time login link: a valid token becomes the session cookie; anything else falls through
  // to the app's own login page.
  app.get('/login', async (req: Request, res: Response, next) => {
    const token = req.query.token
    if (typeof token !== 'string' || token.length === 0 || token.length > 200) return next()
    try {
      await startSession(req, res, token)
      res.redirect(303, '/')
    } catch {
      next()
    }
  })

  const notFound = (req: Request) =>
    new SharedLLMError('NOT_FOUND', `no route ${req.method} ${req.path.slice(0, 200)}`)
  app.use((req, _res, next) => next(isHostPath(req.path) ? notFound(req) : undefined))
  app.use(staticRouter(options.pwaDir ?? distDir))
  app.use((req, _res, next) => next(notFound(req)))
  app.use(errorHandler(log))

  const ws = new WsHub(hub, hosts, { ...options.ws, corsOrigins: options.corsOrigins ?? [], logger: log })
  return Object.assign(app, { hub, ws, hosts, routes })
}

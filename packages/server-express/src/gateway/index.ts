import type { Hub } from '@sharedllm/core'
import { Router } from 'express'
import { Gateway, type GatewayOptions } from './gateway'
import { handleMetrics } from './metrics'
import { isGatewayPath } from './routes'

export { Gateway, type GatewayOptions, rewrite } from './gateway'
export { GATEWAY_ROUTES, type GatewayRoute, isGatewayPath, resolveRoute } from './routes'
export { countsFrom, tapFor, type UsageCounts, type UsageTap } from './usage-tap'

/**
 * The authenticated Ollama/OpenAI gateway: `/ollama/api/*`, `/v1/*` (forwarded to the local Ollama within the
 * device's role, slice and limits) and `GET /metrics`. Bearer keys only (never cookies). Everything under
 * `/ollama` and `/v1` is answered here: an unlisted path is a 404 and never reaches Ollama.
 */
export function createGatewayRouter(hub: Hub, options: GatewayOptions = {}): Router {
  const gateway = new Gateway(hub, options)
  const router = Router()
  router.use((req, res, next) => {
    const path = req.path
    if (!isGatewayPath(path)) return next()
    if (path === '/metrics') return void handleMetrics(hub, gateway.upstream, req, res)
    void gateway.handle(req, res, path)
  })
  return router
}

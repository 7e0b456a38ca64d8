import { createGatewayHandler, type GatewayOptions, type Hub } from '@sharedllm/core'
import type { RequestHandler } from 'express'

/**
 * Mounts core's gateway (`/ollama/*`, `/v1/*`, `/metrics`) in the Express app: every path the gateway owns
 * is answered by it, anything else goes on to the next handler.
 */
export function createGatewayRouter(hub: Hub, options: GatewayOptions = {}): RequestHandler {
  const gateway = createGatewayHandler(hub, options)
  return (req, res, next) => (gateway.handles(req.path) ? gateway(req, res) : next())
}

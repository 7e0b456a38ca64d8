import type { Hub } from '@sharedllm/core'
import { Router } from 'express'

/**
 * The authenticated Ollama/OpenAI gateway (`/ollama/api/*`, `/v1/*`, `/metrics`). Placeholder until the
 * gateway work lands: answers nothing, so requests fall through to the app's 404.
 */
export function createGatewayRouter(_hub: Hub): Router {
  return Router()
}

import { type Hub, isAdmin, type OllamaStatus, SharedLLMError } from '@sharedllm/core'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { bearerToken, unauthorized } from './bearer'
import { asGatewayError, sendGatewayError } from './respond'
import type { Upstream } from './upstream'

/** Ollama's state for `sharedllm_ollama_up`: the manager's when it runs, else a quick probe of its version. */
async function ollamaStatus(hub: Hub, upstream: Upstream): Promise<OllamaStatus | null> {
  const status = hub.ollama.status()
  if (status.state !== 'unknown') return status
  const running = await upstream.getJson('/api/version', 1000).then(
    (r) => r.status === 200,
    () => false,
  )
  return { ...status, running }
}

/** `GET /metrics`: Prometheus text format, for the owner (admin bearer) only. */
export async function handleMetrics(
  hub: Hub,
  upstream: Upstream,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  try {
    if (req.method !== 'GET') {
      res.setHeader('Allow', 'GET')
      throw new SharedLLMError('METHOD_NOT_ALLOWED', `${req.method} is not allowed on /metrics; use GET`)
    }
    const principal = await hub.access.authenticate(bearerToken(req))
    if (!principal) throw unauthorized()
    if (!isAdmin(principal)) {
      throw new SharedLLMError(
        'FORBIDDEN',
        'metrics are for the host owner; use the admin secret as the bearer',
      )
    }
    const body = hub.metrics.render(hub.memory?.latest() ?? null, await ollamaStatus(hub, upstream))
    res.writeHead(200, {
      'Content-Type': 'text/plain; version=0.0.4; charset=utf-8',
      'Content-Length': Buffer.byteLength(body),
      'Cache-Control': 'no-store',
    })
    res.end(body)
  } catch (err) {
    sendGatewayError(res, 'ollama', asGatewayError(err))
  }
}

import type { IncomingMessage, ServerResponse } from 'node:http'
import { isAdmin } from '../../access/access'
import { SharedLLMError } from '../../errors'
import type { Hub } from '../../hub'
import { renderQueueMetrics } from '../../fairshare/metrics'
import type { OllamaStatus } from '../../protocol/types'
import { effectiveBudgets } from '../../usage/quota'
import { authenticateRequest, unauthorized } from './auth'
import { asGatewayError, sendGatewayError } from './respond'

/** Ollama's state for `sharedllm_ollama_up`: the manager's when it runs, else a quick probe of its version. */
async function ollamaStatus(hub: Hub): Promise<OllamaStatus | null> {
  const status = hub.ollama.status()
  if (status.state !== 'unknown') return status
  const running = await hub.ollama.client.document('/api/version', 1000).then(
    (r) => r.status === 200,
    () => false,
  )
  return { ...status, running }
}

/**
 * The queue's families (sharedllm_queue_depth, sharedllm_vtc_counter, sharedllm_queue_wait_seconds) and the
 * usage ones (sharedllm_quota_remaining_tokens, sharedllm_usage_tokens). Devices are labelled by id, as in
 * sharedllm_tokens_total; the owner is `admin`.
 */
async function queueAndUsageLines(hub: Hub): Promise<string> {
  const [devices, roles] = await Promise.all([hub.devices.list(), hub.roles.list()])
  const byId = new Map(roles.map((r) => [r.id, r]))
  const budgets = devices
    .filter((d) => d.status === 'approved')
    .map((d) => ({
      id: d.id,
      label: d.id,
      budgets: effectiveBudgets(d.role_id ? (byId.get(d.role_id) ?? null) : null, d),
    }))
  const lines = [...renderQueueMetrics(hub.queue.scheduler), ...(await hub.usage.metricsLines(budgets))]
  return `${lines.join('\n')}\n`
}

/** `GET /metrics`: Prometheus text format, for the owner (admin secret, session or admin-role key) only. */
export async function handleMetrics(hub: Hub, req: IncomingMessage, res: ServerResponse): Promise<void> {
  try {
    if (req.method !== 'GET') {
      res.setHeader('Allow', 'GET')
      throw new SharedLLMError('METHOD_NOT_ALLOWED', `${req.method} is not allowed on /metrics; use GET`)
    }
    const auth = await authenticateRequest(hub, req)
    if (!auth) throw unauthorized()
    if (!isAdmin(auth.principal)) {
      throw new SharedLLMError(
        'FORBIDDEN',
        'metrics are for the host owner; use the admin secret as the bearer',
      )
    }
    const body =
      hub.metrics.render(hub.memory?.latest() ?? null, await ollamaStatus(hub)) +
      (await queueAndUsageLines(hub))
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

import {
  type AuditResponse,
  type GpuResponse,
  type HealthResponse,
  type MeResponse,
  type OllamaStatusResponse,
  SharedLLMError,
  type UsageResponse,
} from '@sharedllm/core'
import { z } from 'zod'
import { type AnyRoute, route } from './define'
import { queueRoutes } from './queue'
import { usageRoutes } from './usage'

export const auditQuery = z.object({
  limit: z.coerce.number().int('must be a whole number').min(1).max(1000).optional(),
  before: z.coerce.number().int('must be a whole number').min(1).optional(),
})

export function systemRoutes(version: string): AnyRoute[] {
  return [
    route({
      method: 'get',
      path: '/healthz',
      access: 'public',
      summary: 'Liveness: 200 while the server answers',
      handler: (): HealthResponse => ({ ok: true, version }),
    }),
    route({
      method: 'get',
      path: '/api/gpu',
      access: 'admin',
      summary: "This machine's GPU / unified / system memory, per provider, with totals",
      handler: async ({ hub }): Promise<GpuResponse> => {
        if (!hub.memory) {
          throw new SharedLLMError('UPSTREAM_UNAVAILABLE', 'memory providers are not running on this host')
        }
        return hub.memory.latest() ?? (await hub.memory.sample())
      },
    }),
    route({
      method: 'get',
      path: '/api/ollama/status',
      access: 'admin',
      summary: 'State of the Ollama process the host talks to',
      handler: ({ hub }): OllamaStatusResponse => hub.ollama.status(),
    }),
    route({
      method: 'get',
      path: '/api/audit',
      access: 'admin',
      summary: 'Audit log, newest first (page with before=<id>)',
      query: auditQuery,
      handler: async ({ hub, query }): Promise<AuditResponse> => ({
        entries: await hub.auditLog({
          limit: query.limit ?? 100,
          ...(query.before ? { beforeId: query.before } : {}),
        }),
      }),
    }),
    route({
      method: 'get',
      path: '/api/usage',
      access: 'admin',
      summary: 'Usage per device and model, and the latest requests',
      handler: ({ hub }): Promise<UsageResponse> => hub.policy.usageReport(),
    }),
    route({
      method: 'get',
      path: '/api/me',
      access: 'principal',
      summary:
        'The calling device: its record, role, usage, the models it may run, its remaining budgets and hours',
      handler: async ({ hub, principal }): Promise<MeResponse> => {
        if (principal?.kind !== 'device') {
          throw new SharedLLMError(
            'BAD_REQUEST',
            '/api/me is for device keys; the host admin has no device record',
          )
        }
        const [me, limits] = await Promise.all([
          hub.policy.me(principal),
          hub.usage.limits(principal.device, principal.role),
        ])
        return { ...me, limits }
      },
    }),
    ...usageRoutes,
    ...queueRoutes,
  ]
}

import {
  type Hub,
  SharedLLMError,
  type UsageSeriesResponse,
  type UsageService,
  usageSeriesCsv,
  usageSeriesQuerySchema,
} from '@sharedllm/core'
import { z } from 'zod'
import { type AnyRoute, route } from './define'

/** The series query; `device_id` narrows the owner's view to one device (a device always sees its own). */
export const usageSeriesQuery = usageSeriesQuerySchema.extend({
  device_id: z.string().trim().min(1).max(100).optional(),
})

/** The hub's service: its recorder's buffered tokens count too. */
const usageOf = (hub: Hub): UsageService => hub.usage

export const usageRoutes: AnyRoute[] = [
  route({
    method: 'get',
    path: '/api/usage/series',
    access: 'principal',
    summary: 'Tokens, requests and errors over time per device or model (the owner: all; a device: its own)',
    query: usageSeriesQuery,
    handler: ({ hub, query, principal }): Promise<UsageSeriesResponse> => {
      const own = principal?.kind === 'device' ? principal.device.id : query.device_id
      return usageOf(hub).series(query, own)
    },
  }),
  route({
    method: 'get',
    path: '/api/usage/export.csv',
    access: 'principal',
    summary: 'The same view as /api/usage/series, as CSV',
    query: usageSeriesQuery,
    handler: async ({ hub, query, principal, res }) => {
      const own = principal?.kind === 'device' ? principal.device.id : query.device_id
      const csv = usageSeriesCsv(await usageOf(hub).series(query, own))
      res
        .status(200)
        .type('text/csv; charset=utf-8')
        .set('Content-Disposition', `attachment; filename="usage-${query.group}-${query.bucket}.csv"`)
        .send(csv)
    },
  }),
  route({
    method: 'post',
    path: '/api/devices/:id/hours/grant',
    access: 'admin',
    summary: 'One more hour for a device, past its allowed hours (or past the grant it has)',
    handler: async ({ hub, params, actor }): Promise<{ device_id: string; granted_until: number }> => {
      const device = await hub.devices.get(params.id!)
      if (device.status !== 'approved' || !device.role_id) {
        throw new SharedLLMError(
          'CONFLICT',
          `device '${device.name}' is ${device.status}; only approved devices have hours`,
        )
      }
      const role = await hub.roles.get(device.role_id)
      const until = await usageOf(hub).grantOneMoreHour(
        device.id,
        device.allowed_hours ?? role.allowed_hours,
        actor,
      )
      return { device_id: device.id, granted_until: until }
    },
  }),
]

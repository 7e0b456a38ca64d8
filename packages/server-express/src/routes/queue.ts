import type { QueuePauseResponse, QueueReclaimResponse, QueueResponse } from '@sharedllm/core'
import { z } from 'zod'
import { type AnyRoute, route } from './define'

const pauseBody = z.object({
  role_id: z.string().trim().min(1).max(100),
  /** `wait` (default): its requests stay queued; `refuse`: they fail at once and new ones are refused. */
  mode: z.enum(['wait', 'refuse']).optional(),
})
const resumeBody = z.object({ role_id: z.string().trim().min(1).max(100) })
const reclaimBody = z
  .object({ count: z.number().int('must be a whole number').min(1).max(1000).optional() })
  .optional()

/** The owner's controls over the fair-share queue: thin routes over `hub.queue.scheduler`. */
export const queueRoutes: AnyRoute[] = [
  route({
    method: 'get',
    path: '/api/queue',
    access: 'admin',
    summary: 'The fair-share queue: who runs, who waits and for how long, per model and device',
    handler: ({ hub }): QueueResponse => hub.queue.scheduler.snapshot(),
  }),
  route({
    method: 'post',
    path: '/api/queue/pause',
    access: 'admin',
    summary: "Pause a role's requests: they wait (mode wait) or are refused (mode refuse)",
    body: pauseBody,
    handler: async ({ hub, body }): Promise<QueuePauseResponse> => {
      const role = await hub.roles.get(body.role_id) // 404 naming the role when it does not exist
      hub.queue.scheduler.pause(role.id, body.mode ?? 'wait')
      return { paused_roles: hub.queue.scheduler.pausedRoles() }
    },
  }),
  route({
    method: 'post',
    path: '/api/queue/resume',
    access: 'admin',
    summary: "Resume a paused role's requests",
    body: resumeBody,
    handler: async ({ hub, body }): Promise<QueuePauseResponse> => {
      const role = await hub.roles.get(body.role_id)
      hub.queue.scheduler.resume(role.id)
      return { paused_roles: hub.queue.scheduler.pausedRoles() }
    },
  }),
  route({
    method: 'post',
    path: '/api/queue/reclaim',
    access: 'admin',
    summary:
      'Take the GPU back: stop the running requests of the lowest-weight devices (or the first count of them)',
    body: reclaimBody,
    handler: ({ hub, body }): QueueReclaimResponse => ({
      reclaimed: hub.queue.scheduler.reclaim(body?.count !== undefined ? { count: body.count } : {}),
    }),
  }),
]

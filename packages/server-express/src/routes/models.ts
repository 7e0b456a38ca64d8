import {
  errorMessage,
  isSharedLLMError,
  type ModelsResponse,
  type PullsResponse,
  type PullStreamLine,
  type RunningModelsResponse,
  SharedLLMError,
} from '@sharedllm/core'
import { z } from 'zod'
import { type AnyRoute, route } from './define'

export const pullSchema = z.strictObject({
  name: z.string().trim().min(1, 'must not be empty').max(200, 'must be at most 200 characters'),
})
export const deleteModelQuery = z.object({
  force: z.enum(['true', 'false', '1', '0']).optional(),
})

export const modelRoutes: AnyRoute[] = [
  route({
    method: 'get',
    path: '/api/models',
    access: 'admin',
    summary: 'Installed models with a fit verdict per role',
    handler: async ({ hub }): Promise<ModelsResponse> => ({ models: await hub.policy.modelViews() }),
  }),
  route({
    method: 'get',
    path: '/api/models/running',
    access: 'admin',
    summary: 'Models loaded in memory now',
    handler: async ({ hub }): Promise<RunningModelsResponse> => ({ models: await hub.models.running() }),
  }),
  route({
    method: 'get',
    path: '/api/models/pulls',
    access: 'admin',
    summary: 'Pulls in progress',
    handler: ({ hub }): PullsResponse => ({ pulls: hub.models.activePulls() }),
  }),
  route({
    method: 'post',
    path: '/api/models/pull',
    access: 'admin',
    summary: 'Pull a model; answers NDJSON progress lines, then {status:"success"} or {error}',
    body: pullSchema,
    ndjson: true,
    handler: async ({ req, res, hub, body }) => {
      const handle = hub.models.pull(body.name)
      res.status(200).setHeader('Content-Type', 'application/x-ndjson')
      res.setHeader('X-Accel-Buffering', 'no')
      res.flushHeaders()
      // The dashboard's abort (closing the request) cancels the pull on the host.
      const onClose = () => {
        if (!res.writableEnded) handle.cancel()
      }
      req.on('close', onClose)
      const write = (line: PullStreamLine) => {
        if (!res.destroyed) res.write(`${JSON.stringify(line)}\n`)
      }
      try {
        for await (const progress of handle) write(progress)
        await handle.done
        write({ name: body.name, status: 'success' })
      } catch (err) {
        write({ name: body.name, error: isSharedLLMError(err) ? err.message : errorMessage(err) })
      } finally {
        req.off('close', onClose)
        res.end()
      }
      return undefined
    },
  }),
  route({
    method: 'delete',
    path: '/api/models/pull/:name',
    access: 'admin',
    summary: 'Cancel a pull in progress',
    handler: async ({ hub, params }) => {
      const name = params.name!
      if (!hub.models.cancelPull(name)) {
        throw new SharedLLMError('NOT_FOUND', `no pull of '${name.slice(0, 200)}' is in progress`)
      }
      return undefined
    },
  }),
  route({
    method: 'delete',
    path: '/api/models/:name',
    access: 'admin',
    summary: 'Delete a model; a loaded or busy model needs ?force=true',
    query: deleteModelQuery,
    handler: async ({ hub, params, query }) => {
      const force = query.force === 'true' || query.force === '1'
      await hub.models.delete(params.name!, { force })
      return undefined
    },
  }),
]

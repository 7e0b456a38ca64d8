import {
  isSettingKey,
  SharedLLMError,
  type SettingsResponse,
  type SettingUpdateResponse,
} from '@sharedllm/core'
import { z } from 'zod'
import { type AnyRoute, route } from './define'

export const settingUpdateSchema = z
  .strictObject({ value: z.unknown() })
  .refine((b) => b.value !== undefined, { message: 'is required', path: ['value'] })

export const settingRoutes: AnyRoute[] = [
  route({
    method: 'get',
    path: '/api/settings',
    access: 'owner',
    summary: 'Every setting with its value, default and type (secrets never appear)',
    handler: ({ hub }): SettingsResponse => ({ settings: hub.settings.list() }),
  }),
  route({
    method: 'put',
    path: '/api/settings/:key',
    access: 'owner',
    summary: 'Set one setting; the value is validated against its type',
    body: settingUpdateSchema,
    handler: async ({ hub, params, body, actor }): Promise<SettingUpdateResponse> => {
      const key = params.key!
      if (!isSettingKey(key)) {
        throw new SharedLLMError('NOT_FOUND', `unknown setting '${key.slice(0, 64)}'`, {
          details: { field: 'key' },
        })
      }
      return { key, value: await hub.settings.set(key, body.value, actor) }
    },
  }),
]

import { type RoleResponse, type RolesResponse, roleInputSchema, roleUpdateSchema } from '@sharedllm/core'
import { type AnyRoute, route } from './define'

export const roleRoutes: AnyRoute[] = [
  route({
    method: 'get',
    path: '/api/permissions/roles',
    access: 'admin',
    summary: 'List roles',
    handler: async ({ hub }): Promise<RolesResponse> => ({ roles: await hub.roles.list() }),
  }),
  route({
    method: 'post',
    path: '/api/permissions/roles',
    access: 'owner',
    summary: 'Create a role',
    body: roleInputSchema,
    status: 201,
    handler: async ({ hub, body, actor }): Promise<RoleResponse> => ({
      role: await hub.roles.create(body, actor),
    }),
  }),
  route({
    method: 'put',
    path: '/api/permissions/roles/:id',
    access: 'owner',
    summary: 'Change some fields of a role',
    body: roleUpdateSchema,
    handler: async ({ hub, params, body, actor }): Promise<RoleResponse> => ({
      role: await hub.roles.update(params.id!, body, actor),
    }),
  }),
  route({
    method: 'delete',
    path: '/api/permissions/roles/:id',
    access: 'owner',
    summary: 'Delete a role that no device uses (built-in roles cannot be deleted)',
    handler: async ({ hub, params, actor }): Promise<RoleResponse> => ({
      role: await hub.roles.delete(params.id!, actor),
    }),
  }),
]

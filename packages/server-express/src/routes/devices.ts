import {
  addDeviceSchema,
  allocationSchema,
  approveSchema,
  type DeviceDetailResponse,
  deviceLimitsSchema,
  type DeviceResponse,
  type DevicesResponse,
  deviceStatusSchema,
  isOwner,
  type RotateKeyResponse,
  SharedLLMError,
} from '@sharedllm/core'
import { z } from 'zod'
import { type AnyRoute, route } from './define'

export const manageSchema = z.strictObject({ can_manage: z.boolean({ error: 'must be true or false' }) })

export const listDevicesQuery = z.object({ status: deviceStatusSchema.optional() })

export const deviceRoutes: AnyRoute[] = [
  route({
    method: 'get',
    path: '/api/devices',
    access: 'admin',
    summary: 'List devices, optionally by status',
    query: listDevicesQuery,
    handler: async ({ hub, query }): Promise<DevicesResponse> => ({
      devices: await hub.devices.list(query.status ? { status: query.status } : {}),
    }),
  }),
  route({
    method: 'post',
    path: '/api/devices',
    access: 'admin',
    summary: 'Add a device by hand (pending until approved)',
    body: addDeviceSchema,
    status: 201,
    handler: async ({ hub, body, actor }): Promise<DeviceResponse> => ({
      device: await hub.devices.add(body, actor),
    }),
  }),
  route({
    method: 'get',
    path: '/api/devices/:id',
    access: 'admin',
    summary: 'One device with its allocation history and usage totals',
    handler: async ({ hub, params }): Promise<DeviceDetailResponse> => {
      const device = await hub.devices.get(params.id!)
      const [allocation_history, usage] = await Promise.all([
        hub.devices.allocationHistory(device.id),
        hub.usage.totals(device.id),
      ])
      return { device, allocation_history, usage }
    },
  }),
  route({
    method: 'delete',
    path: '/api/devices/:id',
    access: 'admin',
    summary: 'Remove a device; its keys stop working at once',
    handler: async ({ hub, params, actor }): Promise<DeviceResponse> => ({
      device: await hub.devices.remove(params.id!, actor),
    }),
  }),
  route({
    method: 'post',
    path: '/api/devices/:id/approve',
    access: 'admin',
    summary: 'Approve a pending, denied or revoked device with a role',
    body: approveSchema,
    handler: async ({ hub, params, body, actor }): Promise<DeviceResponse> => ({
      device: await hub.devices.approve(params.id!, body.role_id, actor),
    }),
  }),
  route({
    method: 'post',
    path: '/api/devices/:id/deny',
    access: 'admin',
    summary: 'Deny a device',
    handler: async ({ hub, params, actor }): Promise<DeviceResponse> => ({
      device: await hub.devices.deny(params.id!, actor),
    }),
  }),
  route({
    method: 'post',
    path: '/api/devices/:id/revoke',
    access: 'admin',
    summary: 'Revoke an approved device; its streams and sockets end within a second',
    handler: async ({ hub, params, actor }): Promise<DeviceResponse> => ({
      device: await hub.devices.revoke(params.id!, actor),
    }),
  }),
  route({
    method: 'patch',
    path: '/api/devices/:id/memory',
    access: 'admin',
    summary: "Set a device's memory allocation (MiB)",
    body: allocationSchema,
    handler: async ({ hub, params, body, actor }): Promise<DeviceResponse> => ({
      device: await hub.devices.setAllocation(params.id!, body.memory_mb, actor),
    }),
  }),
  route({
    method: 'patch',
    path: '/api/devices/:id/role',
    access: 'admin',
    summary: 'Move an approved device to another role',
    body: approveSchema,
    handler: async ({ hub, params, body, actor }): Promise<DeviceResponse> => ({
      device: await hub.devices.setRole(params.id!, body.role_id, actor),
    }),
  }),
  route({
    method: 'patch',
    path: '/api/devices/:id/limits',
    access: 'admin',
    summary: "Set a device's own token budgets and allowed hours (null: its role's)",
    body: deviceLimitsSchema,
    handler: async ({ hub, params, body, actor }): Promise<DeviceResponse> => ({
      device: await hub.devices.setLimits(params.id!, body, actor),
    }),
  }),
  route({
    method: 'post',
    path: '/api/devices/:id/rotate-key',
    access: 'admin',
    summary:
      "Issue a new device key (shown once); the old one stops working. Another device's key: the owner only",
    handler: async ({ hub, params, actor, principal }): Promise<RotateKeyResponse> => {
      const own = principal?.kind === 'device' && principal.device.id === params.id
      if (!own && !isOwner(principal)) {
        throw new SharedLLMError(
          'FORBIDDEN',
          "another device's key is the owner's to rotate; an admin-role device needs the owner's \"manage\" grant",
        )
      }
      return { device_key: await hub.access.rotateKey(params.id!, actor) }
    },
  }),
  route({
    method: 'patch',
    path: '/api/devices/:id/manage',
    access: 'owner',
    summary:
      'Grant (or take back) "manage" on an admin-role device: settings, roles and other devices\' keys',
    body: manageSchema,
    handler: async ({ hub, params, body, actor }): Promise<DeviceResponse> => ({
      device: await hub.devices.setManage(params.id!, body.can_manage, actor),
    }),
  }),
]

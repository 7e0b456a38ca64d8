import {
  addDeviceSchema,
  allocationSchema,
  approveSchema,
  type DeviceDetailResponse,
  deviceLimitsSchema,
  type DeviceResponse,
  type DevicesResponse,
  deviceStatusSchema,
  type RotateKeyResponse,
} from '@sharedllm/core'
import { z } from 'zod'
import { type AnyRoute, route } from './define'

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
        hub.access.usageTotals(device.id),
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
    summary: 'Issue a new device key (shown once); the old one stops working',
    handler: async ({ hub, params, actor }): Promise<RotateKeyResponse> => ({
      device_key: await hub.access.rotateKey(params.id!, actor),
    }),
  }),
]

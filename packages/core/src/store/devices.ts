import type { Knex } from 'knex'
import type { AllocationChange, Device, DeviceStatus } from '../protocol/types'

interface DeviceRow extends Omit<Device, 'online' | 'can_manage'> {
  online: number | boolean
  can_manage: number | boolean
}

function toDevice(row: DeviceRow): Device {
  return {
    ...row,
    online: Boolean(row.online),
    can_manage: Boolean(row.can_manage),
    last_seen: row.last_seen === null ? null : Number(row.last_seen),
    created_at: Number(row.created_at),
    updated_at: Number(row.updated_at),
  }
}

export const devicesRepo = {
  async list(db: Knex, filter: { status?: DeviceStatus } = {}): Promise<Device[]> {
    const q = db<DeviceRow>('devices').select().orderBy('created_at')
    if (filter.status) q.where({ status: filter.status })
    return (await q).map(toDevice)
  },
  async get(db: Knex, id: string): Promise<Device | undefined> {
    const row = await db<DeviceRow>('devices').where({ id }).first()
    return row ? toDevice(row) : undefined
  },
  async findByIp(db: Knex, ip: string): Promise<Device | undefined> {
    const row = await db<DeviceRow>('devices').where({ ip }).first()
    return row ? toDevice(row) : undefined
  },
  async findByInstanceId(db: Knex, instanceId: string): Promise<Device | undefined> {
    const row = await db<DeviceRow>('devices').where({ instance_id: instanceId }).first()
    return row ? toDevice(row) : undefined
  },
  async listByRole(db: Knex, roleId: string): Promise<Device[]> {
    return (await db<DeviceRow>('devices').where({ role_id: roleId })).map(toDevice)
  },
  async insert(db: Knex, device: Device): Promise<void> {
    await db('devices').insert(device)
  },
  async update(db: Knex, id: string, patch: Partial<Device>): Promise<void> {
    await db('devices').where({ id }).update(patch)
  },
  async delete(db: Knex, id: string): Promise<void> {
    await db('devices').where({ id }).delete()
  },
  /** Sum of allocations of approved devices, optionally leaving one device out. */
  async allocatedMb(db: Knex, exceptId?: string): Promise<number> {
    const q = db('devices').where({ status: 'approved' }).sum({ total: 'allocation_mb' })
    if (exceptId) q.whereNot({ id: exceptId })
    const row = (await q.first()) as { total: number | null } | undefined
    return Number(row?.total ?? 0)
  },
  async addAllocationChange(db: Knex, change: Omit<AllocationChange, 'id'>): Promise<void> {
    await db('allocation_history').insert(change)
  },
  async allocationHistory(db: Knex, deviceId: string): Promise<AllocationChange[]> {
    const rows = await db<AllocationChange>('allocation_history').where({ device_id: deviceId }).orderBy('id')
    return rows.map((r) => ({ ...r, at: Number(r.at) }))
  },
}

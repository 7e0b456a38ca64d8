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

/** `allowed_hours` is JSON text in the table. */
function fromRow(row: DeviceRow): Device {
  const device = toDevice(row)
  const hours: unknown = device.allowed_hours
  return {
    ...device,
    allowed_hours: typeof hours === 'string' ? (JSON.parse(hours) as Device['allowed_hours']) : null,
  }
}

function toRow(device: Partial<Device>): Record<string, unknown> {
  const { allowed_hours, ...rest } = device
  if (allowed_hours === undefined) return rest
  return { ...rest, allowed_hours: allowed_hours === null ? null : JSON.stringify(allowed_hours) }
}

export const devicesRepo = {
  async list(db: Knex, filter: { status?: DeviceStatus } = {}): Promise<Device[]> {
    const q = db<DeviceRow>('devices').select().orderBy('created_at')
    if (filter.status) q.where({ status: filter.status })
    return (await q).map(fromRow)
  },
  async get(db: Knex, id: string): Promise<Device | undefined> {
    const row = await db<DeviceRow>('devices').where({ id }).first()
    return row ? fromRow(row) : undefined
  },
  async findByIp(db: Knex, ip: string): Promise<Device | undefined> {
    const row = await db<DeviceRow>('devices').where({ ip }).first()
    return row ? fromRow(row) : undefined
  },
  async findByInstanceId(db: Knex, instanceId: string): Promise<Device | undefined> {
    const row = await db<DeviceRow>('devices').where({ instance_id: instanceId }).first()
    return row ? fromRow(row) : undefined
  },
  async listByRole(db: Knex, roleId: string): Promise<Device[]> {
    return (await db<DeviceRow>('devices').where({ role_id: roleId })).map(fromRow)
  },
  async insert(db: Knex, device: Device): Promise<void> {
    await db('devices').insert(toRow(device))
  },
  async update(db: Knex, id: string, patch: Partial<Device>): Promise<void> {
    await db('devices').where({ id }).update(toRow(patch))
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

import { randomUUID } from 'node:crypto'
import type { Knex } from 'knex'
import { SharedLLMError } from '../errors'
import { ADMIN_ROLE_ID, type Device, type DeviceSource, type DeviceStatus } from '../protocol/types'
import {
  type AddDeviceInput,
  addDeviceSchema,
  type DeviceLimitsInput,
  deviceLimitsSchema,
  deviceNameSchema,
  memoryMbSchema,
  parseInput,
} from '../schemas'
import { keysRepo } from '../store/access'
import { devicesRepo } from '../store/devices'
import { rolesRepo } from '../store/roles'
import { type Actor, audit, type DomainContext, notFound, securityChanged } from './context'
import type { SettingsService } from './settings'

export interface NewDevice {
  name: string
  source: DeviceSource
  ip?: string | null
  platform?: string | null
  instance_id?: string | null
}

/** Devices: manual adds, lifecycle (pending → approved | denied; approved → revoked) and allocations. */
export class DevicesService {
  constructor(
    private readonly ctx: DomainContext,
    private readonly settings: SettingsService,
  ) {}

  list(filter: { status?: DeviceStatus } = {}): Promise<Device[]> {
    return devicesRepo.list(this.ctx.db(), filter)
  }

  async get(id: string): Promise<Device> {
    const device = await devicesRepo.get(this.ctx.db(), id)
    if (!device) throw notFound('device', id)
    return device
  }

  findByInstanceId(instanceId: string): Promise<Device | undefined> {
    return devicesRepo.findByInstanceId(this.ctx.db(), instanceId)
  }

  /** Manual add by the admin: `{ name, ip }`. A second device with the same IP is a conflict. */
  async add(input: AddDeviceInput | unknown, actor: Actor = 'admin'): Promise<Device> {
    const data = parseInput(addDeviceSchema, input, 'device')
    const device = await this.ctx.db().transaction(async (trx) => {
      const existing = await devicesRepo.findByIp(trx, data.ip)
      if (existing) {
        throw new SharedLLMError(
          'CONFLICT',
          `ip: ${data.ip} is already used by device '${existing.name}' (${existing.id})`,
          { details: { field: 'ip', device_id: existing.id } },
        )
      }
      return this.insert(
        trx,
        { name: data.name, ip: data.ip, platform: data.platform ?? null, source: 'manual' },
        actor,
      )
    })
    this.ctx.bus.emit('device_pending_approval', { device })
    return device
  }

  /**
   * Creates a pending device for join requests, mDNS discoveries and peers. The caller emits events; the
   * name is validated like a manual add.
   */
  async insert(db: Knex, input: NewDevice, actor: Actor): Promise<Device> {
    const name = parseInput(deviceNameSchema, input.name, 'name')
    const now = this.ctx.now()
    const device: Device = {
      id: randomUUID(),
      name,
      ip: input.ip ?? null,
      platform: input.platform ?? null,
      source: input.source,
      status: 'pending',
      role_id: null,
      allocation_mb: 0,
      token_budget_day: null,
      token_budget_week: null,
      token_budget_month: null,
      allowed_hours: null,
      online: input.source !== 'manual',
      last_seen: input.source === 'manual' ? null : now,
      instance_id: input.instance_id ?? null,
      can_manage: false,
      created_at: now,
      updated_at: now,
    }
    await devicesRepo.insert(db, device)
    await audit(db, this.ctx, actor, 'device.add', device.id, null, device)
    return device
  }

  async remove(id: string, actor: Actor = 'admin'): Promise<Device> {
    const device = await this.ctx.db().transaction(async (trx) => {
      const device = await devicesRepo.get(trx, id)
      if (!device) throw notFound('device', id)
      await devicesRepo.delete(trx, id)
      await audit(trx, this.ctx, actor, 'device.remove', id, device, null)
      return device
    })
    // The device's own socket is told first; closing it (device_keys_revoked) comes after.
    this.ctx.bus.emit('device_removed', { device })
    this.ctx.bus.emit('device_keys_revoked', { device_id: id })
    return device
  }

  /**
   * Approves a pending, denied or revoked device with an existing role, in one transaction. The device gets
   * its role's memory as allocation, bounded by the free capacity (unless oversubscription is allowed).
   */
  async approve(id: string, roleId: string, actor: Actor = 'admin'): Promise<Device> {
    if (typeof roleId !== 'string' || roleId.length === 0) {
      throw new SharedLLMError('VALIDATION', 'role_id: must name a role', { details: { field: 'role_id' } })
    }
    const device = await this.ctx.db().transaction((trx) => this.approveIn(trx, id, roleId, actor))
    this.ctx.bus.emit('device_approved', { device })
    return device
  }

  /** The approval itself, for callers that approve inside a larger transaction (pairing codes). */
  async approveIn(trx: Knex, id: string, roleId: string, actor: Actor): Promise<Device> {
    const device = await devicesRepo.get(trx, id)
    if (!device) throw notFound('device', id)
    if (device.status === 'approved') {
      throw new SharedLLMError('CONFLICT', `device '${device.name}' is already approved`)
    }
    const role = await rolesRepo.get(trx, roleId)
    if (!role) {
      throw new SharedLLMError('NOT_FOUND', `role_id: role '${roleId}' not found`, {
        details: { field: 'role_id' },
      })
    }
    let allocation = role.max_memory_mb
    const capacity = this.ctx.capacityMb()
    if (capacity !== undefined && !this.settings.get('allow_oversubscription')) {
      const free = capacity - (await devicesRepo.allocatedMb(trx, id))
      allocation = Math.max(0, Math.min(allocation, Math.floor(free)))
    }
    const now = this.ctx.now()
    // A grant of "manage" never survives a new approval: the owner grants it again if they mean it.
    const next: Device = {
      ...device,
      status: 'approved',
      role_id: role.id,
      allocation_mb: allocation,
      can_manage: false,
      updated_at: now,
    }
    await devicesRepo.update(trx, id, {
      status: next.status,
      role_id: next.role_id,
      allocation_mb: allocation,
      can_manage: false,
      updated_at: now,
    })
    await devicesRepo.addAllocationChange(trx, {
      device_id: id,
      previous_mb: device.allocation_mb,
      allocation_mb: allocation,
      actor,
      reason: `approved as ${role.name}`,
      at: now,
    })
    await audit(trx, this.ctx, actor, 'device.approve', id, device, next)
    return next
  }

  async deny(id: string, actor: Actor = 'admin'): Promise<Device> {
    const device = await this.transition(id, actor, 'denied', ['pending'], 'device.deny')
    this.ctx.bus.emit('device_denied', { device })
    return device
  }

  async revoke(id: string, actor: Actor = 'admin'): Promise<Device> {
    const device = await this.transition(id, actor, 'revoked', ['approved'], 'device.revoke')
    this.ctx.bus.emit('device_revoked', { device })
    this.ctx.bus.emit('device_keys_revoked', { device_id: id })
    return device
  }

  private transition(
    id: string,
    actor: Actor,
    to: DeviceStatus,
    from: DeviceStatus[],
    action: string,
  ): Promise<Device> {
    return this.ctx.db().transaction(async (trx) => {
      const device = await devicesRepo.get(trx, id)
      if (!device) throw notFound('device', id)
      if (!from.includes(device.status)) {
        const hint = device.status === 'approved' && to === 'denied' ? '; revoke it instead' : ''
        throw new SharedLLMError(
          'CONFLICT',
          `device '${device.name}' is ${device.status}, not ${from.join(' or ')}${hint}`,
        )
      }
      const now = this.ctx.now()
      const next: Device = { ...device, status: to, allocation_mb: 0, can_manage: false, updated_at: now }
      await devicesRepo.update(trx, id, { status: to, allocation_mb: 0, can_manage: false, updated_at: now })
      // Denied or revoked: its keys die in the same transaction, so no request slips through after.
      await keysRepo.revokeAll(trx, id, now)
      if (device.allocation_mb !== 0) {
        await devicesRepo.addAllocationChange(trx, {
          device_id: id,
          previous_mb: device.allocation_mb,
          allocation_mb: 0,
          actor,
          reason: to,
          at: now,
        })
      }
      await audit(trx, this.ctx, actor, action, id, device, next)
      return next
    })
  }

  /** Sets an approved device's allocation: within its role's max and the remaining capacity. */
  async setAllocation(id: string, memoryMb: unknown, actor: Actor = 'admin'): Promise<Device> {
    const mb = parseInput(memoryMbSchema, memoryMb, 'memory_mb')
    let previous = 0
    const device = await this.ctx.db().transaction(async (trx) => {
      const device = await devicesRepo.get(trx, id)
      if (!device) throw notFound('device', id)
      if (device.status !== 'approved' || !device.role_id) {
        throw new SharedLLMError(
          'CONFLICT',
          `device '${device.name}' is ${device.status}; only approved devices have an allocation`,
        )
      }
      const role = await rolesRepo.get(trx, device.role_id)
      if (!role) throw notFound('role', device.role_id)
      if (mb > role.max_memory_mb) {
        throw new SharedLLMError(
          'CAPACITY_EXCEEDED',
          `memory_mb: ${mb} MiB is above the ${role.max_memory_mb} MiB maximum of role '${role.name}'`,
          { details: { field: 'memory_mb', max_mb: role.max_memory_mb } },
        )
      }
      const capacity = this.ctx.capacityMb()
      if (capacity !== undefined && !this.settings.get('allow_oversubscription')) {
        const others = await devicesRepo.allocatedMb(trx, id)
        const free = Math.max(0, Math.floor(capacity - others))
        if (mb > free) {
          throw new SharedLLMError(
            'CAPACITY_EXCEEDED',
            `memory_mb: ${mb} MiB is more than the ${free} MiB still free (capacity ${Math.floor(capacity)} MiB, ${others} MiB allocated to other devices)`,
            { details: { field: 'memory_mb', free_mb: free } },
          )
        }
      }
      previous = device.allocation_mb
      const now = this.ctx.now()
      const next: Device = { ...device, allocation_mb: mb, updated_at: now }
      await devicesRepo.update(trx, id, { allocation_mb: mb, updated_at: now })
      await devicesRepo.addAllocationChange(trx, {
        device_id: id,
        previous_mb: previous,
        allocation_mb: mb,
        actor,
        reason: 'set',
        at: now,
      })
      await audit(
        trx,
        this.ctx,
        actor,
        'device.allocation',
        id,
        { allocation_mb: previous },
        { allocation_mb: mb },
      )
      return next
    })
    this.ctx.bus.emit('allocation_changed', { device, previous_mb: previous, allocation_mb: mb })
    return device
  }

  /** Moves an approved device to another role; its allocation must already fit the new role. */
  async setRole(id: string, roleId: string, actor: Actor = 'admin'): Promise<Device> {
    const device = await this.ctx.db().transaction(async (trx) => {
      const device = await devicesRepo.get(trx, id)
      if (!device) throw notFound('device', id)
      if (device.status !== 'approved') {
        throw new SharedLLMError(
          'CONFLICT',
          `device '${device.name}' is ${device.status}; approve it with a role instead`,
        )
      }
      const role = await rolesRepo.get(trx, roleId)
      if (!role) {
        throw new SharedLLMError('NOT_FOUND', `role_id: role '${roleId}' not found`, {
          details: { field: 'role_id' },
        })
      }
      if (device.allocation_mb > role.max_memory_mb) {
        throw new SharedLLMError(
          'CAPACITY_EXCEEDED',
          `role_id: device '${device.name}' has ${device.allocation_mb} MiB, above the ${role.max_memory_mb} MiB maximum of role '${role.name}'; lower its allocation first`,
          { details: { field: 'role_id' } },
        )
      }
      // Leaving the admin role ends a "manage" grant.
      const canManage = device.can_manage && role.id === ADMIN_ROLE_ID
      const next: Device = { ...device, role_id: role.id, can_manage: canManage, updated_at: this.ctx.now() }
      await devicesRepo.update(trx, id, {
        role_id: role.id,
        can_manage: canManage,
        updated_at: next.updated_at,
      })
      await audit(
        trx,
        this.ctx,
        actor,
        'device.role',
        id,
        { role_id: device.role_id, can_manage: device.can_manage },
        { role_id: role.id, can_manage: canManage },
      )
      return next
    })
    this.ctx.bus.emit('device_updated', { device })
    return device
  }

  /**
   * The owner grants (or takes back) "manage" on an approved admin-role device: settings, roles and other
   * devices' keys, as the owner. The caller checks that the actor is the owner.
   */
  async setManage(id: string, canManage: unknown, actor: Actor = 'admin'): Promise<Device> {
    if (typeof canManage !== 'boolean') {
      throw new SharedLLMError('VALIDATION', 'can_manage: must be true or false', {
        details: { field: 'can_manage' },
      })
    }
    const device = await this.ctx.db().transaction(async (trx) => {
      const device = await devicesRepo.get(trx, id)
      if (!device) throw notFound('device', id)
      if (canManage && (device.status !== 'approved' || device.role_id !== ADMIN_ROLE_ID)) {
        throw new SharedLLMError(
          'CONFLICT',
          `device '${device.name}' is ${device.status === 'approved' ? `in role '${device.role_id}'` : device.status}; only an approved device with the admin role can be granted manage`,
          { details: { field: 'can_manage' } },
        )
      }
      const next: Device = { ...device, can_manage: canManage, updated_at: this.ctx.now() }
      await devicesRepo.update(trx, id, { can_manage: canManage, updated_at: next.updated_at })
      await audit(
        trx,
        this.ctx,
        actor,
        canManage ? 'device.grant_manage' : 'device.revoke_manage',
        id,
        { can_manage: device.can_manage },
        { can_manage: canManage },
      )
      return next
    })
    this.ctx.bus.emit('device_updated', { device })
    securityChanged(this.ctx, actor, canManage ? 'device.grant_manage' : 'device.revoke_manage', id)
    return device
  }

  allocationHistory(id: string) {
    return devicesRepo.allocationHistory(this.ctx.db(), id)
  }

  /** Sets the device's own token budgets and allowed hours (null: its role's apply). */
  async setLimits(id: string, input: DeviceLimitsInput | unknown, actor: Actor = 'admin'): Promise<Device> {
    const patch = parseInput(deviceLimitsSchema, input, 'limits')
    const device = await this.ctx.db().transaction(async (trx) => {
      const device = await devicesRepo.get(trx, id)
      if (!device) throw notFound('device', id)
      const now = this.ctx.now()
      const next: Device = { ...device, ...patch, updated_at: now }
      await devicesRepo.update(trx, id, { ...patch, updated_at: now })
      const before = Object.fromEntries(Object.keys(patch).map((k) => [k, device[k as keyof Device]]))
      await audit(trx, this.ctx, actor, 'device.limits', id, before, patch)
      return next
    })
    this.ctx.bus.emit('device_updated', { device })
    return device
  }

  /** Sum of approved devices' allocations in MiB. */
  allocatedMb(): Promise<number> {
    return devicesRepo.allocatedMb(this.ctx.db())
  }

  /**
   * A device was seen on the network (mDNS): updates last_seen, online and its address. Its status never
   * changes here (a denied device stays denied). Emits device_online when it was offline.
   */
  async markSeen(id: string, seen: { ip?: string | null; online?: boolean } = {}): Promise<Device> {
    const device = await devicesRepo.get(this.ctx.db(), id)
    if (!device) throw notFound('device', id)
    const now = this.ctx.now()
    const online = seen.online ?? true
    const next: Device = { ...device, online, last_seen: now, ip: seen.ip ?? device.ip }
    await devicesRepo.update(this.ctx.db(), id, { online, last_seen: now, ip: next.ip })
    if (online && !device.online) this.ctx.bus.emit('device_online', { device: next })
    if (!online && device.online) this.ctx.bus.emit('device_offline', { device: next })
    return next
  }

  /** The device left the network (mDNS goodbye or expiry). Emits device_offline when it was online. */
  async markOffline(id: string): Promise<Device> {
    const device = await devicesRepo.get(this.ctx.db(), id)
    if (!device) throw notFound('device', id)
    if (!device.online) return device
    const next: Device = { ...device, online: false }
    await devicesRepo.update(this.ctx.db(), id, { online: false })
    this.ctx.bus.emit('device_offline', { device: next })
    return next
  }
}

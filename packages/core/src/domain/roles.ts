import { randomUUID } from 'node:crypto'
import { SharedLLMError } from '../errors'
import type { BuiltinRoleId, Role } from '../protocol/types'
import {
  CUSTOM_ROLE_DEFAULTS,
  parseInput,
  type RoleInput,
  type RoleUpdate,
  roleInputSchema,
  roleUpdateSchema,
} from '../schemas'
import { devicesRepo } from '../store/devices'
import { rolesRepo } from '../store/roles'
import { type Actor, audit, type DomainContext, notFound } from './context'
import type { SettingsService } from './settings'

type BuiltinDefaults = Omit<Role, 'created_at' | 'updated_at'>

// Sizes from real fit estimates (README, Roles): guest runs the smallest chat models (0.3–1.5B, about
// 1.1–1.6 GiB with its context), user a 7–8B model at Q4_K_M (about 5.5 GiB at 4096 tokens), admin a 14B one.
// Migration 20261201_009 moves older databases that still hold the round-one sizes.

export const BUILTIN_ROLES: Record<BuiltinRoleId, BuiltinDefaults> = {
  'role-admin': {
    id: 'role-admin',
    name: 'admin',
    max_memory_mb: 16384,
    can_pull: true,
    trust_level: 3,
    allowed_models: [],
    requests_per_minute: null,
    max_concurrent: 4,
    ...fairShare(4, 16, 180),
    max_keep_alive_s: null,
    max_context_tokens: null,
    max_body_bytes: 16 * 1024 * 1024,
    max_predict_tokens: null,
    builtin: true,
  },
  'role-user': {
    id: 'role-user',
    name: 'user',
    max_memory_mb: 8192,
    can_pull: true,
    trust_level: 2,
    allowed_models: [],
    requests_per_minute: null,
    max_concurrent: 4,
    ...fairShare(2, 8, 120),
    max_keep_alive_s: 30 * 60,
    max_context_tokens: 32768,
    max_body_bytes: 1024 * 1024,
    max_predict_tokens: null,
    builtin: true,
  },
  'role-guest': {
    id: 'role-guest',
    name: 'guest',
    max_memory_mb: 2048,
    can_pull: false,
    trust_level: 1,
    allowed_models: [],
    requests_per_minute: 30,
    max_concurrent: 1,
    ...fairShare(1, 2, 60),
    max_keep_alive_s: 5 * 60,
    max_context_tokens: 8192,
    max_body_bytes: 1024 * 1024,
    max_predict_tokens: 2048,
    builtin: true,
  },
}

/**
 * Fair-share and quota fields of a built-in role. `max_wait_s` stays well under 300 s because Node's fetch
 * (undici, which the `ollama` npm client uses) gives up after 300 s without response headers, and a model
 * load can follow the wait: an owner waits up to 3 minutes, a user 2, a guest 1. The other fields are a custom
 * role's defaults.
 */
function fairShare(share_weight: number, max_queued: number, max_wait_s: number) {
  return { ...CUSTOM_ROLE_DEFAULTS, share_weight, max_queued, max_wait_s }
}

export class RolesService {
  constructor(
    private readonly ctx: DomainContext,
    private readonly settings: SettingsService,
  ) {}

  /** Inserts the built-in roles that are missing; never overwrites an edited one. */
  async seed(): Promise<void> {
    const db = this.ctx.db()
    const now = this.ctx.now()
    for (const role of Object.values(BUILTIN_ROLES)) {
      if (await rolesRepo.get(db, role.id)) continue
      // A custom role may already hold the built-in's name; the built-in then gets a suffixed name.
      const taken = await rolesRepo.getByName(db, role.name)
      await rolesRepo.insert(db, {
        ...role,
        name: taken ? `${role.name}-builtin` : role.name,
        created_at: now,
        updated_at: now,
      })
    }
  }

  list(): Promise<Role[]> {
    return rolesRepo.list(this.ctx.db())
  }

  async get(id: string): Promise<Role> {
    const role = await rolesRepo.get(this.ctx.db(), id)
    if (!role) throw notFound('role', id)
    return role
  }

  async create(input: RoleInput | unknown, actor: Actor = 'admin'): Promise<Role> {
    const data = parseInput(roleInputSchema, input, 'role')
    const now = this.ctx.now()
    const role: Role = {
      id: `role-${randomUUID()}`,
      ...data,
      builtin: false,
      created_at: now,
      updated_at: now,
    }
    await this.ctx.db().transaction(async (trx) => {
      if (await rolesRepo.getByName(trx, data.name)) {
        throw new SharedLLMError('CONFLICT', `a role named '${data.name}' already exists`, {
          details: { field: 'name' },
        })
      }
      await rolesRepo.insert(trx, role)
      await audit(trx, this.ctx, actor, 'role.create', role.id, null, role)
    })
    this.ctx.bus.emit('role_changed', { action: 'created', role })
    return role
  }

  async update(id: string, input: RoleUpdate | unknown, actor: Actor = 'admin'): Promise<Role> {
    const patch = parseInput(roleUpdateSchema, input, 'role')
    const updated = await this.ctx.db().transaction(async (trx) => {
      const role = await rolesRepo.get(trx, id)
      if (!role) throw notFound('role', id)
      if (patch.name !== undefined) {
        const other = await rolesRepo.getByName(trx, patch.name)
        if (other && other.id !== id) {
          throw new SharedLLMError('CONFLICT', `a role named '${patch.name}' already exists`, {
            details: { field: 'name' },
          })
        }
      }
      if (patch.max_memory_mb !== undefined) {
        const over = (await devicesRepo.listByRole(trx, id)).filter(
          (d) => d.status === 'approved' && d.allocation_mb > (patch.max_memory_mb as number),
        )
        if (over.length > 0) {
          throw new SharedLLMError(
            'CONFLICT',
            `max_memory_mb: ${patch.max_memory_mb} MiB is below the allocation of ${over
              .map((d) => `'${d.name}' (${d.allocation_mb} MiB)`)
              .join(', ')}; lower their allocations first`,
            { details: { field: 'max_memory_mb', devices: over.map((d) => d.id) } },
          )
        }
      }
      const next: Role = { ...role, ...patch, updated_at: this.ctx.now() }
      await rolesRepo.update(trx, id, { ...patch, updated_at: next.updated_at })
      await audit(trx, this.ctx, actor, 'role.update', id, role, next)
      return next
    })
    this.ctx.bus.emit('role_changed', { action: 'updated', role: updated })
    return updated
  }

  async delete(id: string, actor: Actor = 'admin'): Promise<Role> {
    const deleted = await this.ctx.db().transaction(async (trx) => {
      const role = await rolesRepo.get(trx, id)
      if (!role) throw notFound('role', id)
      if (role.builtin) {
        throw new SharedLLMError(
          'FORBIDDEN',
          `role '${role.name}' is built in; it can be edited but not deleted`,
        )
      }
      if (this.settings.get('default_role') === id) {
        throw new SharedLLMError(
          'CONFLICT',
          `role '${role.name}' is the default_role setting; choose another default first`,
        )
      }
      const users = await devicesRepo.listByRole(trx, id)
      if (users.length > 0) {
        throw new SharedLLMError(
          'CONFLICT',
          `role '${role.name}' is used by ${users.map((d) => `'${d.name}'`).join(', ')}; give them another role first`,
          { details: { devices: users.map((d) => d.id) } },
        )
      }
      await rolesRepo.delete(trx, id)
      await audit(trx, this.ctx, actor, 'role.delete', id, role, null)
      return role
    })
    this.ctx.bus.emit('role_changed', { action: 'deleted', role: deleted })
    return deleted
  }
}

import type { Knex } from 'knex'
import type { AllowedHours, Role } from '../protocol/types'

interface RoleRow {
  id: string
  name: string
  max_memory_mb: number
  can_pull: number | boolean
  trust_level: number
  allowed_models: string
  requests_per_minute: number | null
  max_concurrent: number
  share_weight: number
  max_queued: number
  max_wait_s: number
  allow_cloud: number | boolean
  token_budget_day: number | null
  token_budget_week: number | null
  token_budget_month: number | null
  allowed_hours: string | null
  max_keep_alive_s: number | null
  max_context_tokens: number | null
  max_body_bytes: number
  max_predict_tokens: number | null
  builtin: number | boolean
  created_at: number
  updated_at: number
}

function toRole(row: RoleRow): Role {
  return {
    ...row,
    can_pull: Boolean(row.can_pull),
    allow_cloud: Boolean(row.allow_cloud),
    allowed_hours: row.allowed_hours === null ? null : (JSON.parse(row.allowed_hours) as AllowedHours),
    builtin: Boolean(row.builtin),
    allowed_models: JSON.parse(row.allowed_models) as string[],
    created_at: Number(row.created_at),
    updated_at: Number(row.updated_at),
  }
}

function toRow(role: Partial<Role>): Partial<RoleRow> {
  const { allowed_models, allowed_hours, ...rest } = role
  return {
    ...rest,
    ...(allowed_models ? { allowed_models: JSON.stringify(allowed_models) } : {}),
    ...(allowed_hours !== undefined
      ? { allowed_hours: allowed_hours === null ? null : JSON.stringify(allowed_hours) }
      : {}),
  }
}

export const rolesRepo = {
  async list(db: Knex): Promise<Role[]> {
    const rows = await db<RoleRow>('roles')
      .select()
      .orderBy([{ column: 'builtin', order: 'desc' }, 'created_at'])
    return rows.map(toRole)
  },
  async get(db: Knex, id: string): Promise<Role | undefined> {
    const row = await db<RoleRow>('roles').where({ id }).first()
    return row ? toRole(row) : undefined
  },
  async getByName(db: Knex, name: string): Promise<Role | undefined> {
    const row = await db<RoleRow>('roles').whereRaw('lower(name) = lower(?)', [name]).first()
    return row ? toRole(row) : undefined
  },
  async insert(db: Knex, role: Role): Promise<void> {
    await db('roles').insert(toRow(role))
  },
  async update(db: Knex, id: string, patch: Partial<Role>): Promise<void> {
    await db('roles').where({ id }).update(toRow(patch))
  },
  async delete(db: Knex, id: string): Promise<void> {
    await db('roles').where({ id }).delete()
  },
}

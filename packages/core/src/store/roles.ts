import type { Knex } from 'knex'
import type { Role } from '../protocol/types'

interface RoleRow {
  id: string
  name: string
  max_memory_mb: number
  can_pull: number | boolean
  trust_level: number
  allowed_models: string
  requests_per_minute: number | null
  max_concurrent: number
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
    builtin: Boolean(row.builtin),
    allowed_models: JSON.parse(row.allowed_models) as string[],
    created_at: Number(row.created_at),
    updated_at: Number(row.updated_at),
  }
}

function toRow(role: Partial<Role>): Partial<RoleRow> {
  const { allowed_models, ...rest } = role
  return { ...rest, ...(allowed_models ? { allowed_models: JSON.stringify(allowed_models) } : {}) }
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

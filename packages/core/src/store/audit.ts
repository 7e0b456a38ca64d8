import type { Knex } from 'knex'
import type { AuditEntry } from '../protocol/types'

interface AuditRow {
  id: number
  at: number
  actor: string
  action: string
  target: string | null
  before: string | null
  after: string | null
}

const parse = (s: string | null): unknown => (s === null ? null : JSON.parse(s))

export const auditRepo = {
  async add(db: Knex, entry: Omit<AuditEntry, 'id'>): Promise<void> {
    await db('audit_log').insert({
      at: entry.at,
      actor: entry.actor,
      action: entry.action,
      target: entry.target,
      before: entry.before === undefined || entry.before === null ? null : JSON.stringify(entry.before),
      after: entry.after === undefined || entry.after === null ? null : JSON.stringify(entry.after),
    })
  },
  async list(
    db: Knex,
    opts: { limit?: number; beforeId?: number; target?: string } = {},
  ): Promise<AuditEntry[]> {
    const q = db<AuditRow>('audit_log')
      .select()
      .orderBy('id', 'desc')
      .limit(opts.limit ?? 100)
    if (opts.beforeId) q.where('id', '<', opts.beforeId)
    if (opts.target) q.where({ target: opts.target })
    return (await q).map((r) => ({ ...r, at: Number(r.at), before: parse(r.before), after: parse(r.after) }))
  },
}

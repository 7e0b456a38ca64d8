import type { Knex } from 'knex'
import type { UsageRecord } from '../protocol/types'

/** One raw usage row as the `usage` table holds it (the per-request record, before it has an id). */
export type RawUsageRow = Omit<UsageRecord, 'id' | 'via'> & {
  /** The peer host that served it (pooling), else null. */
  via: string | null
}

/** Counts added to one device × model × hour bucket. `device_id` and `model` use '' for none. */
export interface RollupDelta {
  device_id: string
  model: string
  hour_start: number
  requests: number
  errors: number
  prompt_tokens: number
  completion_tokens: number
  duration_ms: number
  queue_wait_ms: number
}

export interface RollupRow extends RollupDelta {
  id: number
}

const SUMMED = [
  'requests',
  'errors',
  'prompt_tokens',
  'completion_tokens',
  'duration_ms',
  'queue_wait_ms',
] as const

const num = (v: unknown) => Number(v ?? 0)

export const usageRollupsRepo = {
  /** Writes a batch in one transaction: the raw rows, then each bucket's counts added to its row. */
  async writeBatch(db: Knex, raw: RawUsageRow[], deltas: RollupDelta[]): Promise<void> {
    await db.transaction(async (trx) => {
      // A device removed since its request finished: its raw rows keep no device (the foreign key's SET
      // NULL), instead of failing the whole batch on every retry.
      const ids = [...new Set(raw.map((r) => r.device_id).filter((id): id is string => id !== null))]
      const known = new Set<string>()
      for (let i = 0; i < ids.length; i += 500) {
        for (const r of (await trx('devices')
          .whereIn('id', ids.slice(i, i + 500))
          .select('id')) as Array<{
          id: string
        }>)
          known.add(r.id)
      }
      const rows = raw.map((r) =>
        r.device_id === null || known.has(r.device_id) ? r : { ...r, device_id: null },
      )
      for (let i = 0; i < rows.length; i += 200) await trx('usage').insert(rows.slice(i, i + 200))
      for (let i = 0; i < deltas.length; i += 200) {
        const merge: Record<string, Knex.Raw> = {}
        for (const c of SUMMED) merge[c] = trx.raw(`usage_hourly.${c} + excluded.${c}`)
        await trx('usage_hourly')
          .insert(deltas.slice(i, i + 200))
          .onConflict(['device_id', 'model', 'hour_start'])
          .merge(merge)
      }
    })
  },

  /** Prompt + completion tokens of a device since each of `starts`, one query. */
  async tokensSince(db: Knex, deviceId: string, starts: number[]): Promise<number[]> {
    if (starts.length === 0) return []
    const cols = starts.map(
      (_, i) =>
        `coalesce(sum(case when hour_start >= ? then prompt_tokens + completion_tokens else 0 end), 0) as s${i}`,
    )
    const row = (await db('usage_hourly')
      .where('device_id', deviceId)
      .andWhere('hour_start', '>=', Math.min(...starts))
      .select(db.raw(cols.join(', '), starts))
      .first()) as Record<string, unknown> | undefined
    return starts.map((_, i) => num(row?.[`s${i}`]))
  },

  /** Hourly rows in `[from, to)`, optionally for one device, oldest first. */
  async hourly(db: Knex, from: number, to: number, deviceId?: string): Promise<RollupRow[]> {
    const q = db<RollupRow>('usage_hourly')
      .where('hour_start', '>=', from)
      .andWhere('hour_start', '<', to)
      .orderBy(['hour_start', 'device_id', 'model'])
    if (deviceId !== undefined) q.andWhere('device_id', deviceId)
    return (await q).map((r) => ({
      ...r,
      hour_start: num(r.hour_start),
      ...Object.fromEntries(SUMMED.map((c) => [c, num(r[c])])),
    })) as RollupRow[]
  },

  /** Tokens per device × model since `from`, for /metrics. */
  async totalsSince(
    db: Knex,
    from: number,
  ): Promise<Array<{ device_id: string; model: string; prompt_tokens: number; completion_tokens: number }>> {
    const rows = (await db('usage_hourly')
      .where('hour_start', '>=', from)
      .groupBy('device_id', 'model')
      .select('device_id', 'model')
      .sum({ prompt_tokens: 'prompt_tokens', completion_tokens: 'completion_tokens' })) as Array<
      Record<string, unknown>
    >
    return rows.map((r) => ({
      device_id: String(r.device_id),
      model: String(r.model),
      prompt_tokens: num(r.prompt_tokens),
      completion_tokens: num(r.completion_tokens),
    }))
  },

  /** Deletes raw rows before `rawBefore` and rollups before `rollupBefore`; returns how many of each. */
  async prune(db: Knex, rawBefore: number, rollupBefore: number): Promise<{ raw: number; rollups: number }> {
    const raw = await db('usage').where('at', '<', rawBefore).delete()
    const rollups = await db('usage_hourly').where('hour_start', '<', rollupBefore).delete()
    return { raw, rollups }
  },

  async deviceNames(db: Knex): Promise<Map<string, string>> {
    const rows = (await db('devices').select('id', 'name')) as Array<{ id: string; name: string }>
    return new Map(rows.map((r) => [r.id, r.name]))
  },

  /** The latest "one more hour" grant of a device still running at `now`, or null. */
  async grantUntil(db: Knex, deviceId: string, now: number): Promise<number | null> {
    const row = (await db('hours_grants')
      .where('device_id', deviceId)
      .andWhere('until', '>', now)
      .max({ until: 'until' })
      .first()) as { until: number | null } | undefined
    return row?.until == null ? null : num(row.until)
  },

  async addGrant(db: Knex, deviceId: string, until: number, actor: string, now: number): Promise<void> {
    await db('hours_grants').insert({ device_id: deviceId, until, actor, created_at: now })
    // Grants that ran out are history nobody reads.
    await db('hours_grants').where('until', '<', now).delete()
  },
}

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
  /** Requests that went through the fair-share queue (the histogram's total). */
  queued: number
  /** Counts per QUEUE_WAIT_BOUNDS_MS bucket, then one for longer waits. */
  queue_wait_hist: number[]
}

export interface RollupRow extends RollupDelta {
  id: number
}

/**
 * Upper bounds (ms, inclusive) of the hourly queue-wait histogram (migration 012 holds the same columns);
 * a last bucket holds longer waits. 0 is its own bucket: a request that did not wait at all.
 */
export const QUEUE_WAIT_BOUNDS_MS = [
  0, 10, 50, 100, 250, 500, 1000, 2000, 5000, 10_000, 30_000, 60_000, 120_000, 300_000,
] as const
const WAIT_COLUMNS = [...QUEUE_WAIT_BOUNDS_MS.map((b) => `queue_wait_le_${b}`), 'queue_wait_le_inf']

/** The histogram bucket of a wait. */
export function queueWaitBucket(ms: number): number {
  const i = QUEUE_WAIT_BOUNDS_MS.findIndex((b) => ms <= b)
  return i === -1 ? QUEUE_WAIT_BOUNDS_MS.length : i
}

export const emptyWaitHistogram = (): number[] => WAIT_COLUMNS.map(() => 0)

const num = (v: unknown) => Number(v ?? 0)

const COUNTS = [
  'requests',
  'errors',
  'prompt_tokens',
  'completion_tokens',
  'duration_ms',
  'queue_wait_ms',
  'queued',
] as const

/** Adds the counts of `d` (same bucket) into `into`. */
export function addRollup(into: RollupDelta, d: RollupDelta): void {
  for (const c of COUNTS) into[c] += d[c]
  d.queue_wait_hist.forEach((n, i) => {
    into.queue_wait_hist[i] = (into.queue_wait_hist[i] ?? 0) + n
  })
}

/** A delta as the table's columns (the histogram spread over its columns). */
function rollupColumns({ queue_wait_hist, ...d }: RollupDelta): Record<string, string | number> {
  const row: Record<string, string | number> = { ...d }
  WAIT_COLUMNS.forEach((c, i) => {
    row[c] = queue_wait_hist[i] ?? 0
  })
  return row
}

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
        for (const c of [...COUNTS, ...WAIT_COLUMNS]) merge[c] = trx.raw(`usage_hourly.${c} + excluded.${c}`)
        await trx('usage_hourly')
          .insert(deltas.slice(i, i + 200).map(rollupColumns))
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
    const q = db('usage_hourly')
      .where('hour_start', '>=', from)
      .andWhere('hour_start', '<', to)
      .orderBy(['hour_start', 'device_id', 'model'])
    if (deviceId !== undefined) q.andWhere('device_id', deviceId)
    return ((await q) as Array<Record<string, unknown>>).map((r) => ({
      id: num(r.id),
      device_id: String(r.device_id),
      model: String(r.model),
      hour_start: num(r.hour_start),
      requests: num(r.requests),
      errors: num(r.errors),
      prompt_tokens: num(r.prompt_tokens),
      completion_tokens: num(r.completion_tokens),
      duration_ms: num(r.duration_ms),
      queue_wait_ms: num(r.queue_wait_ms),
      queued: num(r.queued),
      queue_wait_hist: WAIT_COLUMNS.map((c) => num(r[c])),
    }))
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

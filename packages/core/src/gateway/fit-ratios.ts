import type { Knex } from 'knex'

/** One measurement: what Ollama loaded (`/api/ps` size) against the gateway's estimate at that context. */
export interface FitRatio {
  digest: string
  model: string
  context_length: number
  estimate_bytes: number
  measured_bytes: number
  /** measured / estimate */
  ratio: number
  measured_at: number
}

/** The `fit_ratios` table (migration 20261201_010_fit_ratio): the latest measurement per model digest. */
export const fitRatiosRepo = {
  async get(db: Knex, digest: string): Promise<FitRatio | undefined> {
    const row = (await db('fit_ratios').where({ digest }).first()) as FitRatio | undefined
    return row
      ? { ...row, estimate_bytes: Number(row.estimate_bytes), measured_bytes: Number(row.measured_bytes) }
      : undefined
  },
  async put(db: Knex, row: FitRatio): Promise<void> {
    await db('fit_ratios').insert(row).onConflict('digest').merge()
  },
  async list(db: Knex): Promise<FitRatio[]> {
    return ((await db('fit_ratios').select()) as FitRatio[]).map((r) => ({
      ...r,
      estimate_bytes: Number(r.estimate_bytes),
      measured_bytes: Number(r.measured_bytes),
    }))
  },
}

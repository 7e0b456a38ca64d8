import { randomUUID } from 'node:crypto'
import type { Knex } from 'knex'

const INSTANCE_ID_KEY = 'instance_id'

export const instanceMetaRepo = {
  async get(db: Knex, key: string): Promise<string | undefined> {
    const row = await db<{ key: string; value: string }>('instance_meta').where({ key }).first()
    return row?.value
  },
  /** Inserts unless the key exists; returns the stored value either way. */
  async setIfAbsent(db: Knex, key: string, value: string): Promise<string> {
    await db('instance_meta').insert({ key, value }).onConflict('key').ignore()
    return (await instanceMetaRepo.get(db, key)) ?? value
  },
}

/**
 * This data dir's instance id: random, created on first start and then kept, so peers recognise this host
 * across restarts and address changes.
 */
export async function getInstanceId(db: Knex): Promise<string> {
  const existing = await instanceMetaRepo.get(db, INSTANCE_ID_KEY)
  if (existing) return existing
  return instanceMetaRepo.setIfAbsent(db, INSTANCE_ID_KEY, randomUUID())
}

import type { Knex } from 'knex'

export const settingsRepo = {
  async all(db: Knex): Promise<Map<string, unknown>> {
    const rows = await db<{ key: string; value: string }>('settings').select('key', 'value')
    return new Map(rows.map((r) => [r.key, JSON.parse(r.value) as unknown]))
  },
  async set(db: Knex, key: string, value: unknown, at: number): Promise<void> {
    await db('settings')
      .insert({ key, value: JSON.stringify(value), updated_at: at })
      .onConflict('key')
      .merge()
  },
}

import type { Knex } from 'knex'

/**
 * Queue wait per device × model × hour as a histogram, so the usage charts can show p50 and p95 (a sum, which
 * is all 008 kept, gives only the mean). `queued` counts the requests that went through the fair-share
 * queue; each `queue_wait_le_<ms>` counts those that waited more than the previous bound and at most <ms>
 * (`queue_wait_le_inf`: longer than the last). The bounds are frozen here: store/usage-rollups.ts lists the
 * same ones.
 */
const COLUMNS = [
  'queue_wait_le_0',
  'queue_wait_le_10',
  'queue_wait_le_50',
  'queue_wait_le_100',
  'queue_wait_le_250',
  'queue_wait_le_500',
  'queue_wait_le_1000',
  'queue_wait_le_2000',
  'queue_wait_le_5000',
  'queue_wait_le_10000',
  'queue_wait_le_30000',
  'queue_wait_le_60000',
  'queue_wait_le_120000',
  'queue_wait_le_300000',
  'queue_wait_le_inf',
]

export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('usage_hourly', (t) => {
    t.integer('queued').notNullable().defaultTo(0)
    for (const c of COLUMNS) t.integer(c).notNullable().defaultTo(0)
  })
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('usage_hourly', (t) => {
    for (const c of ['queued', ...COLUMNS]) t.dropColumn(c)
  })
}

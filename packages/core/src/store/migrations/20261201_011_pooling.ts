import type { Knex } from 'knex'

/** Pooling: the peer host that served a routed request, on its usage row (null: served here). */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('usage', (t) => {
    t.string('via', 200).nullable()
  })
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('usage', (t) => {
    t.dropColumn('via')
  })
}

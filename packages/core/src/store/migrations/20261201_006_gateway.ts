import type { Knex } from 'knex'

/** Role limits the gateway enforces: the largest request body, and the most tokens one request may generate. */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('roles', (t) => {
    t.integer('max_body_bytes')
      .notNullable()
      .defaultTo(1024 * 1024)
    t.integer('max_predict_tokens').nullable()
  })
  // The built-ins' defaults (an edited built-in keeps its other fields; these columns are new).
  await knex('roles')
    .where({ id: 'role-admin' })
    .update({ max_body_bytes: 16 * 1024 * 1024 })
  await knex('roles').where({ id: 'role-guest' }).update({ max_predict_tokens: 2048 })
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('roles', (t) => {
    t.dropColumn('max_body_bytes')
    t.dropColumn('max_predict_tokens')
  })
}

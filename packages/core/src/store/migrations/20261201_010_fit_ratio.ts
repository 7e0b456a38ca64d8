import type { Knex } from 'knex'

/**
 * What Ollama really loaded against the gateway's estimate, per model digest: after a load the gateway
 * compares `/api/ps` size at its context_length with its own estimate there, and scales later estimates
 * of that model by the ratio.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('fit_ratios', (t) => {
    t.string('digest').primary()
    t.string('model').notNullable()
    t.integer('context_length').notNullable()
    t.bigInteger('estimate_bytes').notNullable()
    t.bigInteger('measured_bytes').notNullable()
    t.float('ratio').notNullable()
    t.bigInteger('measured_at').notNullable()
  })
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('fit_ratios')
}

import type { Knex } from 'knex'

/** Built-in roles get their own fair-share values; custom roles get the guest's (the column defaults). */
const BUILTIN_FAIR_SHARE: Record<string, { share_weight: number; max_queued: number; max_wait_s: number }> = {
  'role-admin': { share_weight: 4, max_queued: 16, max_wait_s: 180 },
  'role-user': { share_weight: 2, max_queued: 8, max_wait_s: 120 },
  'role-guest': { share_weight: 1, max_queued: 2, max_wait_s: 60 },
}

export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('roles', (t) => {
    t.integer('share_weight').notNullable().defaultTo(1)
    t.integer('max_queued').notNullable().defaultTo(2)
    t.integer('max_wait_s').notNullable().defaultTo(60)
    t.boolean('allow_cloud').notNullable().defaultTo(false)
    t.bigInteger('token_budget_day').nullable()
    t.bigInteger('token_budget_week').nullable()
    t.bigInteger('token_budget_month').nullable()
    // JSON list of { days, from, to }; null: always open.
    t.text('allowed_hours').nullable()
  })
  for (const [id, values] of Object.entries(BUILTIN_FAIR_SHARE)) {
    await knex('roles').where({ id }).update(values)
  }

  // A device's own budgets and hours; null: its role's.
  await knex.schema.alterTable('devices', (t) => {
    t.bigInteger('token_budget_day').nullable()
    t.bigInteger('token_budget_week').nullable()
    t.bigInteger('token_budget_month').nullable()
    t.text('allowed_hours').nullable()
  })

  // Usage per device × model × hour (the hour starts on the host's local hour). No foreign key: a removed
  // device's history stays. '' stands for "no device" (the owner) and "no model", so the key is unique.
  await knex.schema.createTable('usage_hourly', (t) => {
    t.increments('id')
    t.string('device_id').notNullable()
    t.string('model').notNullable()
    t.bigInteger('hour_start').notNullable()
    t.integer('requests').notNullable().defaultTo(0)
    t.integer('errors').notNullable().defaultTo(0)
    t.bigInteger('prompt_tokens').notNullable().defaultTo(0)
    t.bigInteger('completion_tokens').notNullable().defaultTo(0)
    t.bigInteger('duration_ms').notNullable().defaultTo(0)
    t.bigInteger('queue_wait_ms').notNullable().defaultTo(0)
    t.unique(['device_id', 'model', 'hour_start'])
    t.index(['hour_start'])
  })

  // "One more hour" grants: the device may use the gateway until `until`, whatever its schedule says.
  await knex.schema.createTable('hours_grants', (t) => {
    t.increments('id')
    t.string('device_id').notNullable().references('id').inTable('devices').onDelete('CASCADE').index()
    t.bigInteger('until').notNullable()
    t.string('actor').notNullable()
    t.bigInteger('created_at').notNullable()
  })
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('hours_grants')
  await knex.schema.dropTable('usage_hourly')
  await knex.schema.alterTable('devices', (t) => {
    for (const c of ['allowed_hours', 'token_budget_month', 'token_budget_week', 'token_budget_day'])
      t.dropColumn(c)
  })
  await knex.schema.alterTable('roles', (t) => {
    for (const c of [
      'allowed_hours',
      'token_budget_month',
      'token_budget_week',
      'token_budget_day',
      'allow_cloud',
      'max_wait_s',
      'max_queued',
      'share_weight',
    ])
      t.dropColumn(c)
  })
}

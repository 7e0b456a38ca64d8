import type { Knex } from 'knex'

export async function up(knex: Knex): Promise<void> {
  // One row: the admin secret's hash. Sessions and one-time login links refer to it by generation.
  await knex.schema.createTable('admin_secret', (t) => {
    t.increments('id')
    t.string('secret_hash').notNullable()
    t.bigInteger('created_at').notNullable()
  })
  await knex.schema.createTable('admin_sessions', (t) => {
    t.string('token_hash').primary()
    t.string('kind').notNullable() // 'session' | 'login_link'
    t.bigInteger('created_at').notNullable()
    t.bigInteger('expires_at').notNullable().index()
  })
  await knex.schema.createTable('device_keys', (t) => {
    t.increments('id')
    t.string('device_id').notNullable().references('id').inTable('devices').onDelete('CASCADE').index()
    t.string('key_hash').notNullable().unique()
    t.string('hint').notNullable()
    t.bigInteger('created_at').notNullable()
    t.bigInteger('revoked_at').nullable()
  })
  await knex.schema.createTable('join_requests', (t) => {
    t.string('id').primary()
    t.string('device_id').notNullable().references('id').inTable('devices').onDelete('CASCADE').index()
    t.string('claim_hash').notNullable()
    t.string('ip').nullable()
    t.bigInteger('created_at').notNullable()
    t.bigInteger('claimed_at').nullable()
  })
  await knex.schema.createTable('pairing_codes', (t) => {
    t.increments('id')
    t.string('code_hash').notNullable().unique()
    t.string('role_id').notNullable().references('id').inTable('roles').onDelete('CASCADE')
    t.integer('attempts_left').notNullable()
    t.bigInteger('created_at').notNullable()
    t.bigInteger('expires_at').notNullable()
    t.bigInteger('used_at').nullable()
    t.string('used_by').nullable()
  })
  await knex.schema.createTable('usage', (t) => {
    t.increments('id')
    t.string('device_id').nullable().references('id').inTable('devices').onDelete('SET NULL').index()
    t.string('model').nullable()
    t.string('endpoint').notNullable()
    t.integer('prompt_tokens').notNullable().defaultTo(0)
    t.integer('completion_tokens').notNullable().defaultTo(0)
    t.integer('duration_ms').notNullable().defaultTo(0)
    t.integer('status').notNullable()
    t.bigInteger('at').notNullable().index()
  })
}

export async function down(knex: Knex): Promise<void> {
  for (const t of [
    'usage',
    'pairing_codes',
    'join_requests',
    'device_keys',
    'admin_sessions',
    'admin_secret',
  ]) {
    await knex.schema.dropTable(t)
  }
}

import type { Knex } from 'knex'

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('roles', (t) => {
    t.string('id').primary()
    t.string('name').notNullable().unique()
    t.integer('max_memory_mb').notNullable()
    t.boolean('can_pull').notNullable().defaultTo(false)
    t.integer('trust_level').notNullable().defaultTo(1)
    t.text('allowed_models').notNullable().defaultTo('[]')
    t.integer('requests_per_minute').nullable()
    t.integer('max_concurrent').notNullable().defaultTo(1)
    t.integer('max_keep_alive_s').nullable()
    t.integer('max_context_tokens').nullable()
    t.boolean('builtin').notNullable().defaultTo(false)
    t.bigInteger('created_at').notNullable()
    t.bigInteger('updated_at').notNullable()
  })

  await knex.schema.createTable('devices', (t) => {
    t.string('id').primary()
    t.string('name').notNullable()
    t.string('ip').nullable().index()
    t.string('platform').nullable()
    t.string('source').notNullable()
    t.string('status').notNullable().index()
    t.string('role_id').nullable().references('id').inTable('roles').onDelete('RESTRICT')
    t.integer('allocation_mb').notNullable().defaultTo(0)
    t.boolean('online').notNullable().defaultTo(false)
    t.bigInteger('last_seen').nullable()
    t.string('instance_id').nullable().unique()
    t.bigInteger('created_at').notNullable()
    t.bigInteger('updated_at').notNullable()
  })

  await knex.schema.createTable('allocation_history', (t) => {
    t.increments('id')
    t.string('device_id').notNullable().references('id').inTable('devices').onDelete('CASCADE').index()
    t.integer('previous_mb').notNullable()
    t.integer('allocation_mb').notNullable()
    t.string('actor').notNullable()
    t.string('reason').notNullable()
    t.bigInteger('at').notNullable()
  })

  await knex.schema.createTable('settings', (t) => {
    t.string('key').primary()
    t.text('value').notNullable()
    t.bigInteger('updated_at').notNullable()
  })

  await knex.schema.createTable('audit_log', (t) => {
    t.increments('id')
    t.bigInteger('at').notNullable().index()
    t.string('actor').notNullable()
    t.string('action').notNullable()
    t.string('target').nullable()
    t.text('before').nullable()
    t.text('after').nullable()
  })
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('audit_log')
  await knex.schema.dropTable('settings')
  await knex.schema.dropTable('allocation_history')
  await knex.schema.dropTable('devices')
  await knex.schema.dropTable('roles')
}

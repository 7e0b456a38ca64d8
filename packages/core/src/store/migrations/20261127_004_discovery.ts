import type { Knex } from 'knex'

export async function up(knex: Knex): Promise<void> {
  // Other sharedLLM hosts found over mDNS: hosts this instance may join (the reverse of `devices`).
  await knex.schema.createTable('peers', (t) => {
    t.string('id').primary()
    t.string('instance_id').notNullable().unique()
    t.string('name').notNullable()
    t.text('addresses').notNullable().defaultTo('[]')
    t.integer('port').notNullable()
    t.string('version').nullable()
    t.bigInteger('last_seen').nullable()
    t.boolean('online').notNullable().defaultTo(false)
    t.string('status').notNullable().defaultTo('discovered')
    // The key the remote host gave us; never leaves core (lists only say `has_key`).
    t.text('device_key').nullable()
    t.string('join_request_id').nullable()
    t.text('claim_secret').nullable()
    t.string('remote_device_id').nullable()
    t.text('error').nullable()
    t.bigInteger('created_at').notNullable()
    t.bigInteger('updated_at').notNullable()
  })
  await knex.schema.createTable('instance_meta', (t) => {
    t.string('key').primary()
    t.text('value').notNullable()
  })
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('instance_meta')
  await knex.schema.dropTable('peers')
}

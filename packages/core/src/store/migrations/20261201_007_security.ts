import type { Knex } from 'knex'

export async function up(knex: Knex): Promise<void> {
  // "Manage" is the owner's grant to one admin-role device: settings, roles and other devices' keys.
  await knex.schema.alterTable('devices', (t) => {
    t.boolean('can_manage').notNullable().defaultTo(false)
  })
  // A pairing code's first letters name it (not secret), so a wrong try costs that code an attempt, not all.
  await knex.schema.alterTable('pairing_codes', (t) => {
    t.string('code_id').nullable()
  })
  await knex.schema.alterTable('peers', (t) => {
    // The addresses the peer had when we first joined it: a key goes over plain HTTP only to one of these.
    t.text('paired_addresses').nullable()
    // A new address from an advert, kept aside until it answers with the pinned certificate.
    t.text('proposed_addresses').nullable()
  })
  // A peer we already hold a secret for was paired at the addresses it has now.
  await knex('peers')
    .whereNotNull('device_key')
    .orWhereNotNull('claim_secret')
    .update({ paired_addresses: knex.ref('addresses') })
  // Settings that run code are no longer web settings: a value an older version stored from the API goes.
  await knex('settings').whereIn('key', ['ollama_bin', 'extra_providers']).delete()
  await knex('settings')
    .where({ key: 'default_role', value: JSON.stringify('role-admin') })
    .delete()
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('peers', (t) => {
    t.dropColumn('proposed_addresses')
    t.dropColumn('paired_addresses')
  })
  await knex.schema.alterTable('pairing_codes', (t) => {
    t.dropColumn('code_id')
  })
  await knex.schema.alterTable('devices', (t) => {
    t.dropColumn('can_manage')
  })
}

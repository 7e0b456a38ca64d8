import type { Knex } from 'knex'

export async function up(knex: Knex): Promise<void> {
  // Trust on first use: the CA a peer host presented when we first joined it. Every later call to that
  // peer goes over HTTPS and must chain to this CA; a different one is refused.
  await knex.schema.alterTable('peers', (t) => {
    t.text('ca_pem').nullable()
    t.string('ca_fingerprint').nullable()
    t.integer('https_port').nullable()
  })
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('peers', (t) => {
    t.dropColumn('https_port')
    t.dropColumn('ca_fingerprint')
    t.dropColumn('ca_pem')
  })
}

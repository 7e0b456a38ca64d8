import type { Knex } from 'knex'
import * as init from './20261127_001_init'

interface Migration {
  up(knex: Knex): Promise<void>
  down(knex: Knex): Promise<void>
}

/**
 * Migrations are imported modules (no directory scan), so they survive bundling. Append new files here;
 * never edit one that has shipped.
 */
const migrations: Record<string, Migration> = {
  '20261127_001_init': init,
}

export const migrationSource: Knex.MigrationSource<string> = {
  getMigrations: async () => Object.keys(migrations).sort(),
  getMigrationName: (name) => name,
  getMigration: async (name) => {
    const m = migrations[name]
    if (!m) throw new Error(`unknown migration ${name}`)
    return m
  },
}

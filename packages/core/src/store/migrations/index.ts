import type { Knex } from 'knex'
import * as init from './20261127_001_init'
import * as access from './20261127_003_access'
import * as discovery from './20261127_004_discovery'
import * as peerTls from './20261127_005_peer_tls'
import * as gateway from './20261201_006_gateway'
import * as fairshareQuotas from './20261201_008_fairshare_quotas'
import * as security from './20261201_007_security'
import * as householdRoles from './20261201_009_household_roles'
import * as pooling from './20261201_011_pooling'
import * as fitRatio from './20261201_010_fit_ratio'
import * as queueWaitHistogram from './20261201_012_queue_wait_histogram'

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
  '20261127_003_access': access,
  '20261127_004_discovery': discovery,
  '20261127_005_peer_tls': peerTls,
  '20261201_006_gateway': gateway,
  '20261201_008_fairshare_quotas': fairshareQuotas,
  '20261201_007_security': security,
  '20261201_009_household_roles': householdRoles,
  '20261201_011_pooling': pooling,
  '20261201_010_fit_ratio': fitRatio,
  '20261201_012_queue_wait_histogram': queueWaitHistogram,
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

import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import knexFactory from 'knex'
import { describe, expect, test } from 'vitest'
import { DB_FILE_NAME, isSharedLLMError, openStore } from '../src/index'
import { migrationSource } from '../src/store/migrations/index'
import { startHub, tempDir } from './helpers'

describe('store', () => {
  test('creates <dataDir>/sharedllm.db with WAL, foreign keys and a busy timeout', async () => {
    const dir = tempDir()
    const store = await openStore(dir)
    try {
      expect(store.file).toBe(join(dir, DB_FILE_NAME))
      expect(existsSync(store.file)).toBe(true)
      const [mode] = await store.knex.raw('PRAGMA journal_mode')
      expect(mode.journal_mode).toBe('wal')
      const [fk] = await store.knex.raw('PRAGMA foreign_keys')
      expect(fk.foreign_keys).toBe(1)
      const [busy] = await store.knex.raw('PRAGMA busy_timeout')
      expect(busy.timeout).toBe(5000)
      expect(statSync(store.file).mode & 0o777).toBe(0o600)
      expect(statSync(dir).mode & 0o777).toBe(0o700)
    } finally {
      await store.close()
    }
  })

  test('an existing data directory is made 0700 at every start; the database, WAL and SHM 0600', async () => {
    const dir = tempDir()
    const first = await openStore(dir)
    await first.close()
    chmodSync(dir, 0o755)
    chmodSync(join(dir, DB_FILE_NAME), 0o644)
    const store = await openStore(dir)
    try {
      await store.knex('settings').insert({ key: 'probe', value: '1', updated_at: 0 })
      expect(statSync(dir).mode & 0o777).toBe(0o700)
      for (const f of [DB_FILE_NAME, `${DB_FILE_NAME}-wal`, `${DB_FILE_NAME}-shm`]) {
        expect(statSync(join(dir, f)).mode & 0o777, f).toBe(0o600)
      }
    } finally {
      await store.close()
    }
  })

  test('a file that is not SQLite is a clear error naming it, and is left untouched', async () => {
    const dir = tempDir()
    const file = join(dir, DB_FILE_NAME)
    const junk = 'this is not a database, but somebody may need it\n'.repeat(200)
    writeFileSync(file, junk)
    const err = await openStore(dir).catch((e: unknown) => e)
    expect(isSharedLLMError(err, 'STORE_CORRUPT')).toBe(true)
    expect((err as Error).message).toContain(file)
    expect(readFileSync(file, 'utf8')).toBe(junk)
  })

  test('a corrupted SQLite file fails the integrity check and is not recreated', async () => {
    const dir = tempDir()
    const hub = await startHub({ dataDir: dir })
    for (let i = 0; i < 200; i++) await hub.devices.add({ name: `d${i}`, ip: `10.0.${i >> 8}.${i & 255}` })
    await hub.stop()
    const file = join(dir, DB_FILE_NAME)
    // Checkpoint the WAL so every page is in the main file, then scribble over the middle of it.
    const raw = new Database(file)
    raw.pragma('wal_checkpoint(TRUNCATE)')
    raw.close()
    const bytes = readFileSync(file)
    for (let i = 4096 * 2; i < Math.min(bytes.length, 4096 * 6); i++) bytes[i] = (i * 7) & 0xff
    writeFileSync(file, bytes)
    const err = await openStore(dir).catch((e: unknown) => e)
    expect(isSharedLLMError(err)).toBe(true)
    expect((err as { code: string }).code).toMatch(/STORE_CORRUPT/)
    expect((err as Error).message).toContain(file)
    expect(readFileSync(file).equals(bytes)).toBe(true)
  })

  test('a database path that cannot be opened is a clear error naming it (works as root too)', async () => {
    const dir = tempDir()
    const file = join(dir, DB_FILE_NAME)
    mkdirSync(file) // a directory where the database file should be
    const err = await openStore(dir).catch((e: unknown) => e)
    expect(isSharedLLMError(err, 'STORE_UNREADABLE')).toBe(true)
    expect((err as Error).message).toContain(file)
    expect(statSync(file).isDirectory()).toBe(true)
  })

  test('a data dir that cannot be created is a clear error', async () => {
    const dir = tempDir()
    writeFileSync(join(dir, 'file'), 'x')
    const err = await openStore(join(dir, 'file', 'sub')).catch((e: unknown) => e)
    expect(isSharedLLMError(err, 'STORE_UNREADABLE')).toBe(true)
    expect((err as Error).message).toContain(join(dir, 'file', 'sub'))
  })

  test('everything survives close and reopen', async () => {
    const dir = tempDir()
    let hub = await startHub({ dataDir: dir, capacityMb: () => 100_000 })
    const role = await hub.roles.create({ name: 'kids', max_memory_mb: 2048, allowed_models: ['llama3*'] })
    const d = await hub.devices.add({ name: 'Phone', ip: '192.168.1.20' })
    await hub.devices.approve(d.id, role.id)
    await hub.devices.setAllocation(d.id, 1024)
    await hub.settings.set('host_reserve_mb', 4096)
    await hub.stop()

    hub = await startHub({ dataDir: dir, capacityMb: () => 100_000 })
    expect((await hub.roles.get(role.id)).allowed_models).toEqual(['llama3*'])
    const again = await hub.devices.get(d.id)
    expect(again).toMatchObject({ status: 'approved', role_id: role.id, allocation_mb: 1024 })
    expect(hub.settings.get('host_reserve_mb')).toBe(4096)
    expect((await hub.devices.allocationHistory(d.id)).map((h) => h.allocation_mb)).toEqual([2048, 1024])
    expect((await hub.auditLog()).length).toBeGreaterThanOrEqual(5)
  })

  test('migration 007 over a round-one database: peers keep where they were paired, code-running settings go', async () => {
    const file = join(tempDir(), 'round-one.db')
    const knex = knexFactory({
      client: 'better-sqlite3',
      connection: { filename: file },
      useNullAsDefault: true,
    })
    const cfg = { migrationSource, tableName: 'knex_migrations' }
    try {
      for (let i = 0; i < 4; i++) await knex.migrate.up(cfg)
      const now = Date.now()
      const peer = { name: 'x', port: 8080, created_at: now, updated_at: now }
      await knex('peers').insert([
        {
          ...peer,
          id: 'p1',
          instance_id: 'i1',
          addresses: '["10.0.0.5"]',
          status: 'joined',
          device_key: 'k',
        },
        { ...peer, id: 'p2', instance_id: 'i2', addresses: '["10.0.0.6"]', status: 'discovered' },
      ])
      await knex('settings').insert([
        { key: 'ollama_bin', value: '"/usr/bin/touch"', updated_at: 0 },
        { key: 'extra_providers', value: '["evil"]', updated_at: 0 },
        { key: 'default_role', value: '"role-admin"', updated_at: 0 },
        { key: 'api_port', value: '9000', updated_at: 0 },
      ])
      await knex.migrate.latest(cfg)
      expect(await knex('peers').select('id', 'paired_addresses').orderBy('id')).toEqual([
        { id: 'p1', paired_addresses: '["10.0.0.5"]' },
        { id: 'p2', paired_addresses: null },
      ])
      expect((await knex('settings').select('key')).map((r: { key: string }) => r.key)).toEqual(['api_port'])
      expect(Object.keys(await knex('devices').columnInfo())).toContain('can_manage')
    } finally {
      await knex.destroy()
    }
  })
})

import { join } from 'node:path'
import Database from 'better-sqlite3'
import knexFactory from 'knex'
import { describe, expect, test } from 'vitest'
import { isSharedLLMError, openStore } from '../src/index'
import { migrationSource } from '../src/store/migrations'
import { dbState, startHub, tempDir } from './helpers'

const expectValidation = async (p: Promise<unknown>, message: RegExp) => {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  )
  expect(isSharedLLMError(err, 'VALIDATION'), `expected VALIDATION, got ${String(err)}`).toBe(true)
  expect((err as Error).message).toMatch(message)
}

describe('fair-share and quota fields of roles', () => {
  test('built-ins carry their weights, queue bounds and waits; no budgets, always open, no cloud', async () => {
    const hub = await startHub()
    const roles = await hub.roles.list()
    expect(
      roles.map((r) => [r.id, r.share_weight, r.max_queued, r.max_wait_s, r.allow_cloud, r.allowed_hours]),
    ).toEqual([
      ['role-admin', 4, 16, 180, false, null],
      ['role-user', 2, 8, 120, false, null],
      ['role-guest', 1, 2, 60, false, null],
    ])
    for (const r of roles) {
      expect([r.token_budget_day, r.token_budget_week, r.token_budget_month]).toEqual([null, null, null])
    }
  })

  test('a custom role gets the guest defaults and round-trips every new field through the store', async () => {
    const dataDir = tempDir()
    let hub = await startHub({ dataDir })
    const plain = await hub.roles.create({ name: 'plain', max_memory_mb: 512 })
    expect(plain).toMatchObject({ share_weight: 1, max_queued: 2, max_wait_s: 60, allow_cloud: false })
    const hours = [
      { days: [1, 2, 3, 4, 5], from: '16:00', to: '20:00' },
      { days: [0, 6], from: '09:00', to: '21:00' },
      { days: [5], from: '22:00', to: '01:00' },
    ]
    const kids = await hub.roles.create({
      name: 'kids',
      max_memory_mb: 2048,
      share_weight: 3,
      max_queued: 5,
      max_wait_s: 90,
      allow_cloud: true,
      token_budget_day: 20_000,
      token_budget_week: 100_000,
      token_budget_month: null,
      allowed_hours: hours,
    })
    await hub.stop()
    hub = await startHub({ dataDir })
    expect(await hub.roles.get(kids.id)).toEqual(kids)
    const changed = await hub.roles.update(kids.id, { allowed_hours: null, token_budget_day: 0 })
    expect(changed).toMatchObject({ allowed_hours: null, token_budget_day: 0, token_budget_week: 100_000 })
    expect(await hub.roles.get(kids.id)).toEqual(changed)
  })

  test.each([
    [{ share_weight: 0 }, /^share_weight:/],
    [{ share_weight: 1.5 }, /^share_weight: must be a whole number/],
    [{ max_queued: -1 }, /^max_queued:/],
    [{ max_wait_s: 0 }, /^max_wait_s:/],
    [{ allow_cloud: 'yes' }, /^allow_cloud:/],
    [{ token_budget_day: -1 }, /^token_budget_day: must not be negative/],
    [{ token_budget_week: 10.5 }, /^token_budget_week: must be a whole number/],
    [{ token_budget_month: '100' }, /^token_budget_month:/],
    [
      { allowed_hours: [{ days: [1], from: '25:00', to: '26:00' }] },
      /^allowed_hours\.0\.from: must be a time/,
    ],
    [{ allowed_hours: [{ days: [1], from: '08:00', to: '8:30' }] }, /^allowed_hours\.0\.to: must be a time/],
    [{ allowed_hours: [{ days: [7], from: '08:00', to: '09:00' }] }, /^allowed_hours\.0\.days\.0:/],
    [{ allowed_hours: [{ days: [], from: '08:00', to: '09:00' }] }, /^allowed_hours\.0\.days: must list/],
    [
      { allowed_hours: [{ days: [1, 1], from: '08:00', to: '09:00' }] },
      /^allowed_hours\.0\.days: must not list a day twice/,
    ],
    [{ allowed_hours: [{ days: [1], from: '08:00', to: '09:00', tz: 'x' }] }, /unknown field 'tz'/],
    [
      {
        allowed_hours: [
          { days: [1, 2], from: '08:00', to: '12:00' },
          { days: [2], from: '11:00', to: '13:00' },
        ],
      },
      /^allowed_hours\.1: overlaps window 0/,
    ],
    [
      // Saturday 22:00 runs past midnight into Sunday 02:00, which the second window also covers.
      {
        allowed_hours: [
          { days: [6], from: '22:00', to: '03:00' },
          { days: [0], from: '02:00', to: '05:00' },
        ],
      },
      /^allowed_hours\.1: overlaps window 0/,
    ],
  ])('refuses %j with a 400 naming the field, and changes nothing', async (patch, message) => {
    const hub = await startHub()
    const before = await dbState(hub)
    await expectValidation(hub.roles.create({ name: 'x', max_memory_mb: 100, ...patch }), message)
    await expectValidation(hub.roles.update('role-guest', patch), message)
    expect(await dbState(hub)).toBe(before)
  })

  test('windows that only touch, and a whole day as 00:00–24:00, are accepted', async () => {
    const hub = await startHub()
    const role = await hub.roles.update('role-guest', {
      allowed_hours: [
        { days: [1], from: '08:00', to: '12:00' },
        { days: [1], from: '12:00', to: '24:00' },
        { days: [2], from: '00:00', to: '24:00' },
        { days: [6], from: '22:00', to: '00:00' },
        { days: [0], from: '00:00', to: '01:00' },
      ],
    })
    expect(role.allowed_hours).toHaveLength(5)
  })
})

describe('device limits', () => {
  test('a device starts with no overrides; setLimits sets, clears and audits them', async () => {
    const hub = await startHub()
    const d = await hub.devices.add({ name: 'tablet', ip: '192.168.1.40' })
    expect(d).toMatchObject({
      token_budget_day: null,
      token_budget_week: null,
      token_budget_month: null,
      allowed_hours: null,
    })
    const hours = [{ days: [1, 2, 3, 4, 5], from: '16:00', to: '20:00' }]
    const set = await hub.devices.setLimits(d.id, { token_budget_day: 5000, allowed_hours: hours })
    expect(set).toMatchObject({ token_budget_day: 5000, token_budget_week: null, allowed_hours: hours })
    expect(await hub.devices.get(d.id)).toEqual(set)
    const cleared = await hub.devices.setLimits(d.id, { allowed_hours: null })
    expect(cleared).toMatchObject({ token_budget_day: 5000, allowed_hours: null })
    expect((await hub.auditLog()).filter((a) => a.action === 'device.limits')).toHaveLength(2)
  })

  test('bad limits are refused naming the field, and change nothing', async () => {
    const hub = await startHub()
    const d = await hub.devices.add({ name: 'tablet', ip: '192.168.1.40' })
    const before = await dbState(hub)
    await expectValidation(hub.devices.setLimits(d.id, { token_budget_week: -5 }), /^token_budget_week:/)
    await expectValidation(hub.devices.setLimits(d.id, {}), /at least one field/)
    await expectValidation(hub.devices.setLimits(d.id, { share_weight: 3 }), /unknown field 'share_weight'/)
    await expectValidation(
      hub.devices.setLimits(d.id, {
        allowed_hours: [
          { days: [3], from: '10:00', to: '12:00' },
          { days: [3], from: '09:00', to: '10:30' },
        ],
      }),
      /^allowed_hours\.1: overlaps window 0/,
    )
    expect(await dbState(hub)).toBe(before)
  })
})

describe('migration 20261201_008', () => {
  test('an existing database keeps its roles and devices and gets the new fields with built-in values', async () => {
    const dir = tempDir()
    const file = join(dir, 'sharedllm.db')
    const knex = knexFactory({
      client: 'better-sqlite3',
      connection: { filename: file },
      useNullAsDefault: true,
      migrations: { migrationSource },
    })
    const names = await migrationSource.getMigrations([])
    for (const name of names) {
      if (name >= '20261201_008') break
      await knex.migrate.up({ name })
    }
    const now = Date.now()
    const old = { max_memory_mb: 1, can_pull: false, trust_level: 1, created_at: now, updated_at: now }
    await knex('roles').insert([
      { id: 'role-guest', name: 'guest', builtin: true, ...old },
      { id: 'role-admin', name: 'boss', builtin: true, ...old },
      { id: 'role-custom', name: 'custom', builtin: false, ...old },
    ])
    await knex('devices').insert({
      id: 'd1',
      name: 'old phone',
      source: 'manual',
      status: 'pending',
      created_at: now,
      updated_at: now,
    })
    await knex.destroy()

    const store = await openStore(dir)
    try {
      const roles = await store.knex('roles').select('id', 'name', 'share_weight', 'max_queued', 'max_wait_s')
      expect(roles).toEqual(
        expect.arrayContaining([
          { id: 'role-guest', name: 'guest', share_weight: 1, max_queued: 2, max_wait_s: 60 },
          { id: 'role-admin', name: 'boss', share_weight: 4, max_queued: 16, max_wait_s: 180 },
          { id: 'role-custom', name: 'custom', share_weight: 1, max_queued: 2, max_wait_s: 60 },
        ]),
      )
      const device = await store.knex('devices').where({ id: 'd1' }).first()
      expect(device).toMatchObject({ name: 'old phone', token_budget_day: null, allowed_hours: null })
    } finally {
      await store.close()
    }
    const db = new Database(file, { readonly: true })
    expect(db.pragma('integrity_check', { simple: true })).toBe('ok')
    db.close()
  })
})

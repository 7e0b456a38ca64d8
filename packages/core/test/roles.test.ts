import { join } from 'node:path'
import Database from 'better-sqlite3'
import { describe, expect, test } from 'vitest'
import { isSharedLLMError } from '../src/index'
import { dbState, recordEvents, startHub, tempDir } from './helpers'

const expectCode = async (p: Promise<unknown>, code: string, message?: RegExp) => {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  )
  expect(isSharedLLMError(err), `expected a SharedLLMError ${code}, got ${String(err)}`).toBe(true)
  expect((err as { code: string }).code).toBe(code)
  if (message) expect((err as Error).message).toMatch(message)
}

describe('roles', () => {
  test('built-ins exist with their ids and defaults', async () => {
    const hub = await startHub()
    const roles = await hub.roles.list()
    expect(roles.map((r) => [r.id, r.name, r.max_memory_mb, r.can_pull, r.trust_level])).toEqual([
      ['role-admin', 'admin', 16384, true, 3],
      ['role-user', 'user', 8192, true, 2],
      ['role-guest', 'guest', 2048, false, 1],
    ])
    const guest = await hub.roles.get('role-guest')
    expect(guest).toMatchObject({ requests_per_minute: 30, max_concurrent: 1, builtin: true })
    expect(await hub.roles.get('role-user')).toMatchObject({ requests_per_minute: null, max_concurrent: 4 })
  })

  test('migration 009 moves the round-one sizes of the built-ins, not a size the owner set', async () => {
    const dataDir = tempDir()
    const first = await startHub({ dataDir })
    await first.stop()
    // A database from round one: the old sizes, the user role edited by its owner, 009 not yet run.
    const db = new Database(join(dataDir, 'sharedllm.db'))
    db.prepare("UPDATE roles SET max_memory_mb = 1024 WHERE id = 'role-guest'").run()
    db.prepare("UPDATE roles SET max_memory_mb = 5000 WHERE id = 'role-user'").run()
    db.prepare("DELETE FROM knex_migrations WHERE name = '20261201_009_household_roles'").run()
    db.close()
    const hub = await startHub({ dataDir })
    expect((await hub.roles.get('role-guest')).max_memory_mb).toBe(2048)
    expect((await hub.roles.get('role-user')).max_memory_mb).toBe(5000)
    expect((await hub.roles.get('role-admin')).max_memory_mb).toBe(16384)
  })

  test('create, update and delete a custom role, with events and audit', async () => {
    const hub = await startHub()
    const events = recordEvents(hub)
    const role = await hub.roles.create({
      name: 'kids',
      max_memory_mb: 2048,
      allowed_models: ['llama3.2:*', 'qwen2.5:0.5b'],
      requests_per_minute: 20,
      max_concurrent: 1,
      max_keep_alive_s: 120,
    })
    expect(role).toMatchObject({ name: 'kids', can_pull: false, trust_level: 1, builtin: false })
    const updated = await hub.roles.update(role.id, { max_memory_mb: 3072, can_pull: true })
    expect(updated).toMatchObject({ max_memory_mb: 3072, can_pull: true, name: 'kids' })
    await hub.roles.delete(role.id)
    await expectCode(hub.roles.get(role.id), 'NOT_FOUND')
    expect(
      events.filter((e) => e.type === 'role_changed').map((e) => (e.payload as { action: string }).action),
    ).toEqual(['created', 'updated', 'deleted'])
    expect((await hub.auditLog()).map((a) => a.action)).toEqual(['role.delete', 'role.update', 'role.create'])
  })

  test.each([
    [{ name: '', max_memory_mb: 10 }, /^name:/],
    [{ name: 'x', max_memory_mb: -1 }, /^max_memory_mb:/],
    [{ name: 'x', max_memory_mb: 1.5 }, /^max_memory_mb: must be a whole number/],
    [{ name: 'x', max_memory_mb: 1e12 }, /^max_memory_mb: must be at most/],
    [{ name: 'x', max_memory_mb: '100' }, /^max_memory_mb:/],
    [{ name: 'x', max_memory_mb: 100, trust_level: 4 }, /^trust_level:/],
    [{ name: 'x', max_memory_mb: 100, allowed_models: ['../etc'] }, /^allowed_models\.0:/],
    [{ name: 'x', max_memory_mb: 100, requests_per_minute: 0 }, /^requests_per_minute:/],
    [{ name: 'x', max_memory_mb: 100, max_concurrent: 0 }, /^max_concurrent:/],
    [{ name: 'x', max_memory_mb: 100, bogus: 1 }, /unknown field 'bogus'/],
    [null, /^role:/],
  ])('rejects bad role input %j and changes nothing', async (input, message) => {
    const hub = await startHub()
    const before = await dbState(hub)
    await expectCode(hub.roles.create(input), 'VALIDATION', message)
    expect(await dbState(hub)).toBe(before)
  })

  test('gateway limits: body size and generated tokens, with the built-ins’ defaults and validation', async () => {
    const hub = await startHub()
    const byId = Object.fromEntries((await hub.roles.list()).map((r) => [r.id, r]))
    expect(byId['role-admin']).toMatchObject({ max_body_bytes: 16 * 1024 * 1024, max_predict_tokens: null })
    expect(byId['role-user']).toMatchObject({ max_body_bytes: 1024 * 1024, max_predict_tokens: null })
    expect(byId['role-guest']).toMatchObject({ max_body_bytes: 1024 * 1024, max_predict_tokens: 2048 })
    const role = await hub.roles.create({ name: 'limits', max_memory_mb: 1024 })
    expect(role).toMatchObject({ max_body_bytes: 1024 * 1024, max_predict_tokens: null })
    const updated = await hub.roles.update(role.id, { max_body_bytes: 4096, max_predict_tokens: 100 })
    expect(updated).toMatchObject({ max_body_bytes: 4096, max_predict_tokens: 100 })
    await expectCode(hub.roles.update(role.id, { max_body_bytes: 10 }), 'VALIDATION', /max_body_bytes/)
    await expectCode(
      hub.roles.update(role.id, { max_predict_tokens: -1 }),
      'VALIDATION',
      /max_predict_tokens/,
    )
    await expectCode(hub.roles.update(role.id, { max_body_bytes: 65 * 1024 * 1024 }), 'VALIDATION', /64 MiB/)
  })

  test('names are unique (case-insensitively) on create and rename', async () => {
    const hub = await startHub()
    await expectCode(hub.roles.create({ name: 'Admin', max_memory_mb: 1 }), 'CONFLICT', /already exists/)
    const a = await hub.roles.create({ name: 'a', max_memory_mb: 1 })
    await expectCode(hub.roles.update(a.id, { name: 'guest' }), 'CONFLICT')
    await expectCode(hub.roles.update(a.id, {}), 'VALIDATION', /at least one field/)
    await expectCode(hub.roles.update('nope', { name: 'b' }), 'NOT_FOUND')
  })

  test('built-ins can be edited but not deleted', async () => {
    const hub = await startHub()
    expect((await hub.roles.update('role-guest', { max_memory_mb: 2048 })).max_memory_mb).toBe(2048)
    const before = await dbState(hub)
    await expectCode(hub.roles.delete('role-guest'), 'FORBIDDEN', /built in/)
    expect(await dbState(hub)).toBe(before)
  })

  test('a role in use cannot be deleted; the error names the devices', async () => {
    const hub = await startHub()
    const role = await hub.roles.create({ name: 'family', max_memory_mb: 1000 })
    const d = await hub.devices.add({ name: "Mum's iPad", ip: '10.0.0.5' })
    await hub.devices.approve(d.id, role.id)
    const before = await dbState(hub)
    await expectCode(hub.roles.delete(role.id), 'CONFLICT', /Mum's iPad/)
    expect(await dbState(hub)).toBe(before)
    // Reassigned, it can go.
    await hub.devices.setRole(d.id, 'role-user')
    await hub.roles.delete(role.id)
  })

  test('a role cannot shrink below an approved device allocation', async () => {
    const hub = await startHub()
    const d = await hub.devices.add({ name: 'laptop', ip: '10.0.0.6' })
    await hub.devices.approve(d.id, 'role-user')
    await expectCode(hub.roles.update('role-user', { max_memory_mb: 1000 }), 'CONFLICT', /laptop/)
  })

  test('the default_role setting cannot be deleted out from under it', async () => {
    const hub = await startHub()
    const r = await hub.roles.create({ name: 'lan', max_memory_mb: 100 })
    await hub.settings.set('default_role', r.id)
    await expectCode(hub.roles.delete(r.id), 'CONFLICT', /default_role/)
  })
})

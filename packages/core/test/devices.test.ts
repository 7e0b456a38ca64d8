import { describe, expect, test, vi } from 'vitest'
import { isSharedLLMError } from '../src/index'
import { dbState, recordEvents, startHub } from './helpers'

async function expectCode(p: Promise<unknown>, code: string, message?: RegExp) {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  )
  expect(isSharedLLMError(err), `expected ${code}, got ${String(err)}`).toBe(true)
  expect((err as { code: string }).code).toBe(code)
  if (message) expect((err as Error).message).toMatch(message)
}

describe('devices', () => {
  test('manual add creates a pending device and emits device_pending_approval', async () => {
    const hub = await startHub()
    const events = recordEvents(hub)
    const d = await hub.devices.add({ name: '  Living-room TV ', ip: '192.168.1.50' })
    expect(d).toMatchObject({
      name: 'Living-room TV',
      ip: '192.168.1.50',
      status: 'pending',
      source: 'manual',
      role_id: null,
    })
    expect(events.map((e) => e.type)).toEqual(['device_pending_approval'])
    expect(await hub.devices.get(d.id)).toEqual(d)
    expect((await hub.devices.list({ status: 'pending' })).map((x) => x.id)).toEqual([d.id])
    expect(await hub.devices.list({ status: 'approved' })).toEqual([])
  })

  test.each([
    [{ name: 'ok', ip: '999.1.1.1' }, /^ip:/],
    [{ name: 'ok', ip: 'fe80::1::2' }, /^ip:/],
    [{ name: '', ip: '10.0.0.1' }, /^name:/],
    [{ name: 'x'.repeat(65), ip: '10.0.0.1' }, /^name: must be at most 64/],
    [{ name: 'bell\u0007', ip: '10.0.0.1' }, /^name: must contain only printable/],
    [{ name: 5, ip: '10.0.0.1' }, /^name:/],
    [{ ip: '10.0.0.1' }, /^name:/],
    [{ name: 'a', ip: '10.0.0.1', admin: true }, /unknown field 'admin'/],
  ])('rejects %j with a message naming the field, changing nothing', async (input, message) => {
    const hub = await startHub()
    const before = await dbState(hub)
    await expectCode(hub.devices.add(input), 'VALIDATION', message)
    expect(await dbState(hub)).toBe(before)
  })

  test('IPv6 is accepted; a duplicate IP is a conflict naming the existing device', async () => {
    const hub = await startHub()
    await hub.devices.add({ name: 'v6', ip: 'fd00::1' })
    const first = await hub.devices.add({ name: 'Desk', ip: '10.0.0.9' })
    const before = await dbState(hub)
    await expectCode(
      hub.devices.add({ name: 'Other', ip: '10.0.0.9' }),
      'CONFLICT',
      new RegExp(`Desk.*${first.id}`),
    )
    expect(await dbState(hub)).toBe(before)
  })

  test('unknown ids are NOT_FOUND everywhere', async () => {
    const hub = await startHub()
    for (const p of [
      hub.devices.get('nope'),
      hub.devices.remove('nope'),
      hub.devices.approve('nope', 'role-user'),
      hub.devices.deny('nope'),
      hub.devices.revoke('nope'),
      hub.devices.setAllocation('nope', 1),
      hub.devices.setRole('nope', 'role-user'),
    ]) {
      await expectCode(p, 'NOT_FOUND', /'nope' not found/)
    }
  })

  test('lifecycle: pending → approved → revoked → approved; pending → denied → approved', async () => {
    const hub = await startHub()
    const events = recordEvents(hub)
    const a = await hub.devices.add({ name: 'a', ip: '10.0.0.1' })
    const b = await hub.devices.add({ name: 'b', ip: '10.0.0.2' })
    expect((await hub.devices.approve(a.id, 'role-user')).status).toBe('approved')
    await expectCode(hub.devices.approve(a.id, 'role-user'), 'CONFLICT', /already approved/)
    await expectCode(hub.devices.deny(a.id), 'CONFLICT', /revoke it instead/)
    expect((await hub.devices.revoke(a.id)).status).toBe('revoked')
    await expectCode(hub.devices.revoke(a.id), 'CONFLICT')
    expect((await hub.devices.approve(a.id, 'role-guest')).role_id).toBe('role-guest')
    expect((await hub.devices.deny(b.id)).status).toBe('denied')
    await expectCode(hub.devices.revoke(b.id), 'CONFLICT')
    expect((await hub.devices.approve(b.id, 'role-guest')).status).toBe('approved')
    expect(
      events.map((e) => e.type).filter((t) => t !== 'device_pending_approval' && t !== 'device_keys_revoked'),
    ).toEqual(['device_approved', 'device_revoked', 'device_approved', 'device_denied', 'device_approved'])
  })

  test('approve needs an existing role and changes nothing otherwise', async () => {
    const hub = await startHub()
    const d = await hub.devices.add({ name: 'a', ip: '10.0.0.1' })
    const before = await dbState(hub)
    await expectCode(
      hub.devices.approve(d.id, 'role-nope'),
      'NOT_FOUND',
      /role_id: role 'role-nope' not found/,
    )
    await expectCode(hub.devices.approve(d.id, ''), 'VALIDATION', /role_id/)
    expect(await dbState(hub)).toBe(before)
    expect((await hub.devices.get(d.id)).status).toBe('pending')
  })

  test('two concurrent approvals of one device: exactly one wins', async () => {
    const hub = await startHub({ capacityMb: () => 100_000 })
    const d = await hub.devices.add({ name: 'a', ip: '10.0.0.1' })
    const results = await Promise.allSettled([
      hub.devices.approve(d.id, 'role-user'),
      hub.devices.approve(d.id, 'role-guest'),
      hub.devices.approve(d.id, 'role-admin'),
    ])
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1)
    const rejected = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected')
    expect(rejected.map((r) => (r.reason as { code: string }).code)).toEqual(['CONFLICT', 'CONFLICT'])
    const winner = (
      results.find((r) => r.status === 'fulfilled') as PromiseFulfilledResult<{ role_id: string }>
    ).value
    expect((await hub.devices.get(d.id)).role_id).toBe(winner.role_id)
    expect(await hub.devices.allocationHistory(d.id)).toHaveLength(1)
    expect((await hub.auditLog()).filter((a) => a.action === 'device.approve')).toHaveLength(1)
  })

  test('remove deletes the device and its history, with an event and audit', async () => {
    const hub = await startHub()
    const d = await hub.devices.add({ name: 'a', ip: '10.0.0.1' })
    await hub.devices.approve(d.id, 'role-guest')
    const events = recordEvents(hub)
    await hub.devices.remove(d.id)
    await expectCode(hub.devices.get(d.id), 'NOT_FOUND')
    expect(events.map((e) => e.type)).toContain('device_removed')
    expect((await hub.auditLog())[0]).toMatchObject({ action: 'device.remove', target: d.id })
    expect(await hub.db('allocation_history').where({ device_id: d.id })).toEqual([])
  })

  test('a removed device is dropped from the quota watch, however it was removed', async () => {
    const hub = await startHub()
    const forget = vi.spyOn(hub.quotaWatch, 'forget')
    const d = await hub.devices.add({ name: 'a', ip: '10.0.0.1' })
    await hub.devices.approve(d.id, 'role-guest')
    await hub.devices.remove(d.id)
    expect(forget.mock.calls).toEqual([[d.id]])
  })
})

describe('allocation', () => {
  test('approving gives the role memory, bounded by free capacity', async () => {
    let capacity = 10_000
    const hub = await startHub({ capacityMb: () => capacity })
    const a = await hub.devices.add({ name: 'a', ip: '10.0.0.1' })
    const b = await hub.devices.add({ name: 'b', ip: '10.0.0.2' })
    const c = await hub.devices.add({ name: 'c', ip: '10.0.0.3' })
    expect((await hub.devices.approve(a.id, 'role-admin')).allocation_mb).toBe(10_000)
    capacity = 14_000
    expect((await hub.devices.approve(b.id, 'role-user')).allocation_mb).toBe(4000)
    expect((await hub.devices.approve(c.id, 'role-guest')).allocation_mb).toBe(0)
  })

  test('set allocation: within role max and remaining capacity, with a history row per change', async () => {
    const hub = await startHub({ capacityMb: () => 6000 })
    await hub.roles.update('role-user', { max_memory_mb: 4096 }) // round one's size, which this test was written for
    const events = recordEvents(hub)
    const a = await hub.devices.add({ name: 'a', ip: '10.0.0.1' })
    const b = await hub.devices.add({ name: 'b', ip: '10.0.0.2' })
    await hub.devices.approve(a.id, 'role-user') // 4096
    await hub.devices.approve(b.id, 'role-user') // 1904 left
    expect((await hub.devices.get(b.id)).allocation_mb).toBe(1904)
    await hub.devices.setAllocation(a.id, 1000)
    await hub.devices.setAllocation(b.id, 4096)
    expect(await hub.devices.allocatedMb()).toBe(5096)
    const before = await dbState(hub)
    await expectCode(
      hub.devices.setAllocation(a.id, 1905),
      'CAPACITY_EXCEEDED',
      /more than the 1904 MiB still free/,
    )
    await expectCode(
      hub.devices.setAllocation(b.id, 4097),
      'CAPACITY_EXCEEDED',
      /4096 MiB maximum of role 'user'/,
    )
    await expectCode(hub.devices.setAllocation(a.id, -1), 'VALIDATION', /^memory_mb: must not be negative/)
    await expectCode(
      hub.devices.setAllocation(a.id, 10.5),
      'VALIDATION',
      /^memory_mb: must be a whole number/,
    )
    await expectCode(hub.devices.setAllocation(a.id, '100'), 'VALIDATION', /^memory_mb/)
    await expectCode(hub.devices.setAllocation(a.id, Number.NaN), 'VALIDATION', /^memory_mb/)
    expect(await dbState(hub)).toBe(before)
    expect((await hub.devices.allocationHistory(a.id)).map((h) => [h.previous_mb, h.allocation_mb])).toEqual([
      [0, 4096],
      [4096, 1000],
    ])
    expect(events.filter((e) => e.type === 'allocation_changed')).toHaveLength(2)
  })

  test('allow_oversubscription lifts the capacity bound but not the role max', async () => {
    const hub = await startHub({ capacityMb: () => 1000 })
    await hub.roles.update('role-user', { max_memory_mb: 4096 })
    await hub.settings.set('allow_oversubscription', true)
    const a = await hub.devices.add({ name: 'a', ip: '10.0.0.1' })
    expect((await hub.devices.approve(a.id, 'role-user')).allocation_mb).toBe(4096)
    await expectCode(hub.devices.setAllocation(a.id, 5000), 'CAPACITY_EXCEEDED', /maximum of role/)
  })

  test('only approved devices have an allocation', async () => {
    const hub = await startHub({ capacityMb: () => 1000 })
    const a = await hub.devices.add({ name: 'a', ip: '10.0.0.1' })
    await expectCode(hub.devices.setAllocation(a.id, 10), 'CONFLICT', /pending/)
  })

  test('revoking frees the slice', async () => {
    const hub = await startHub({ capacityMb: () => 4096 })
    const a = await hub.devices.add({ name: 'a', ip: '10.0.0.1' })
    const b = await hub.devices.add({ name: 'b', ip: '10.0.0.2' })
    await hub.devices.approve(a.id, 'role-user')
    expect((await hub.devices.approve(b.id, 'role-user')).allocation_mb).toBe(0)
    await hub.devices.revoke(a.id)
    await hub.devices.setAllocation(b.id, 4096)
  })
})

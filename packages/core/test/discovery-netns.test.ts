// mDNS discovery between real processes in two Linux network namespaces joined by a veth pair (the test
// creates and removes them). Needs root and iproute2; skipped with a message otherwise. CI runs as root.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { AuditEntry, Device } from '@sharedllm/core'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { createNetnsPair, type NetnsPair, netnsUnavailable } from './discovery/netns'
import { type HubEvent, NsHub } from './discovery/ns-hub'

const unavailable = netnsUnavailable()
if (unavailable)
  console.warn(`\n!!! SKIPPING the mDNS namespace tests: ${unavailable}. CI runs them as root.\n`)

const NEW_PER_MIN = 6

describe.skipIf(unavailable !== null)('mDNS discovery across two network namespaces', () => {
  let pair: NetnsPair
  let a: NsHub
  let b: NsHub
  // Started with mDNS off, and turned on live by the tests that need a newcomer.
  let gamma: NsHub
  let delta: NsHub
  const hubs: NsHub[] = []
  const dirs: string[] = []
  const startHub = async (ns: string, name: string, env: Record<string, string> = {}) => {
    const dir = mkdtempSync(join(tmpdir(), 'sllm-ns-'))
    dirs.push(dir)
    const hub = new NsHub(ns, {
      SLLM_DATA_DIR: dir,
      SLLM_NAME: name,
      SLLM_QUERY_MS: '400',
      SLLM_EXPIRE_MS: '3000',
      SLLM_NEW_PER_MIN: String(NEW_PER_MIN),
      ...env,
    })
    hubs.push(hub)
    await hub.start()
    return hub
  }
  const devices = (hub: NsHub) => hub.call<Device[]>('devices')
  const deviceOf = async (hub: NsHub, instanceId: string) =>
    (await devices(hub)).find((d) => d.instance_id === instanceId)
  const about = (instanceId: string, event: string) => (e: HubEvent) =>
    e.event === event && e.payload.device?.instance_id === instanceId

  beforeAll(async () => {
    pair = createNetnsPair('sld')
    try {
      const off = { SLLM_SETTINGS: JSON.stringify({ mdns_enabled: false }) }
      ;[a, b, gamma, delta] = await Promise.all([
        startHub(pair.a.ns, 'alpha host'),
        startHub(pair.b.ns, 'beta host'),
        startHub(pair.b.ns, 'gamma host', off),
        startHub(pair.b.ns, 'delta host', off),
      ])
    } catch (err) {
      for (const h of hubs) h.kill()
      pair.destroy()
      throw err
    }
  }, 90_000) // four processes starting at once on a busy 2-core machine

  afterAll(async () => {
    await Promise.all(hubs.map((h) => h.stop().catch(() => h.kill())))
    pair?.destroy()
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true })
  })

  test('two hubs discover each other within 5 s, each showing the other as pending', async () => {
    const started = Date.now()
    await Promise.all([
      a.waitEvent(about(b.instanceId, 'device_pending_approval'), 5000, 'beta pending on alpha'),
      b.waitEvent(about(a.instanceId, 'device_pending_approval'), 5000, 'alpha pending on beta'),
    ])
    expect(Date.now() - started).toBeLessThan(5000)

    const onA = await deviceOf(a, b.instanceId)
    const onB = await deviceOf(b, a.instanceId)
    // The resolved address of the other side, not the hostname (the same in both namespaces).
    expect(onA).toMatchObject({
      name: 'beta host',
      source: 'mdns',
      status: 'pending',
      online: true,
      ip: pair.b.address,
    })
    expect(onB).toMatchObject({
      name: 'alpha host',
      source: 'mdns',
      status: 'pending',
      online: true,
      ip: pair.a.address,
    })
    // Each ignores its own advert.
    expect(await deviceOf(a, a.instanceId)).toBeUndefined()
    expect(await devices(a)).toHaveLength(1)

    const [peer] =
      await a.call<Array<{ instance_id: string; addresses: string[]; port: number; status: string }>>('peers')
    expect(peer).toMatchObject({ instance_id: b.instanceId, port: 18080, status: 'discovered' })
    expect(peer?.addresses[0]).toBe(pair.b.address)
    const discovered = await a.waitEvent(about(b.instanceId, 'device_discovered'))
    expect(discovered.payload.addresses).toContain(pair.b.address)
  })

  test('seen again: last_seen moves and no second pending entry appears', async () => {
    const before = (await deviceOf(a, b.instanceId))!.last_seen!
    await new Promise((r) => setTimeout(r, 900))
    const after = await deviceOf(a, b.instanceId)
    expect(after!.last_seen!).toBeGreaterThan(before)
    expect(a.events.filter(about(b.instanceId, 'device_pending_approval'))).toHaveLength(1)
  })

  test('a goodbye marks the device offline; back on, it is online again and a denial sticks', async () => {
    const device = (await deviceOf(a, b.instanceId))!
    await a.call('deny', { id: device.id })
    expect(a.events.some(about(b.instanceId, 'device_offline'))).toBe(false)

    // mdns_enabled off on beta, live: beta sends goodbyes.
    await b.call('set', { key: 'mdns_enabled', value: false })
    expect(await b.call('running')).toBe(false)
    const t0 = Date.now()
    await a.waitEvent(about(b.instanceId, 'device_offline'), 2000, 'beta offline on alpha')
    // Under the 3 s expiry: this was the goodbye, not the timeout.
    expect(Date.now() - t0).toBeLessThan(2000)
    expect(await deviceOf(a, b.instanceId)).toMatchObject({ online: false, status: 'denied' })

    await b.call('set', { key: 'mdns_enabled', value: true })
    await a.waitEvent(about(b.instanceId, 'device_online'), 5000, 'beta online again')
    expect(await deviceOf(a, b.instanceId)).toMatchObject({ online: true, status: 'denied' })
    expect(a.events.filter(about(b.instanceId, 'device_pending_approval'))).toHaveLength(1)
  })

  test('a host that vanishes without a goodbye expires to offline', async () => {
    await gamma.call('set', { key: 'mdns_enabled', value: true })
    await a.waitEvent(about(gamma.instanceId, 'device_pending_approval'), 5000, 'gamma pending')
    gamma.kill()
    const t0 = Date.now()
    await a.waitEvent(about(gamma.instanceId, 'device_offline'), 6000, 'gamma expired')
    expect(Date.now() - t0).toBeGreaterThan(1000)
  })

  test('trust_local_network approves a new host with default_role, and the audit log says so', async () => {
    await a.call('set', { key: 'default_role', value: 'role-user' })
    await a.call('set', { key: 'trust_local_network', value: true })
    await delta.call('set', { key: 'mdns_enabled', value: true })
    await a.waitEvent(about(delta.instanceId, 'device_approved'), 5000, 'delta approved')
    const device = (await deviceOf(a, delta.instanceId))!
    expect(device).toMatchObject({ status: 'approved', role_id: 'role-user', source: 'mdns' })
    const audit = await a.call<AuditEntry[]>('audit', { target: device.id })
    expect(audit.find((e) => e.action === 'device.auto_approve')).toMatchObject({
      actor: 'mdns',
      after: { reason: 'trust_local_network', role_id: 'role-user' },
    })
    expect(a.events.some(about(delta.instanceId, 'device_pending_approval'))).toBe(false)
    await a.call('set', { key: 'trust_local_network', value: false })
    await delta.stop()
    await a.waitEvent(about(delta.instanceId, 'device_offline'), 2500, 'delta goodbye')
  })

  test('spoofed adverts: a hostile, huge name is sanitised; one entry per id; new ids are rate-limited', async () => {
    const hostileId = 'e7e7e7e7-0000-4000-8000-000000000bad'
    const hostileName = `\u001b[2J<img src=x onerror=alert(1)>\u202Eevil\u0000${'A'.repeat(200)}`
    const label = '\u0007<b>spoof</b>\u001b[31m'
    const sameId = Array.from({ length: 20 }, (_, i) => ({
      label: `${label}${i}`,
      txt: [`id=${hostileId}`, 'v=0.1.0', 'port=18080', `name=${hostileName}`],
      port: 18080,
      address: pair.b.address,
    }))
    await b.call('spoof', { adverts: sameId })
    await a.waitEvent(about(hostileId, 'device_pending_approval'), 5000, 'spoofed device')
    const spoofed = (await devices(a)).filter((d) => d.instance_id === hostileId)
    expect(spoofed).toHaveLength(1)
    const name = spoofed[0]!.name
    expect(Array.from(name).length).toBeLessThanOrEqual(64)
    expect(name).not.toMatch(/[\p{Cc}\p{Cf}<>"`]/u)
    // Format characters (the bidi override) are removed, control characters become a space, markup goes.
    expect(name.startsWith('[2Jimg src=x onerror=alert(1)evil AAA')).toBe(true)

    // A flood of made-up ids: at most NEW_PER_MIN new entries a minute in all (beta, gamma, delta and the
    // spoof above took 4), pointing at loopback is dropped outright.
    const before = (await devices(a)).length
    const flood = Array.from({ length: 12 }, (_, i) => ({
      label: `flood-${i}`,
      txt: [`id=f100d000-0000-4000-8000-${String(i).padStart(12, '0')}`, 'name=flood'],
      port: 18080,
      address: pair.b.address,
    }))
    const loopback = {
      label: 'loop',
      txt: ['id=10000000-0000-4000-8000-00000000100b', 'name=loop'],
      port: 11434,
      address: '127.0.0.1',
    }
    await b.call('spoof', { adverts: [...flood, loopback] })
    const expected = before + NEW_PER_MIN - 4
    const deadline = Date.now() + 5000
    while ((await devices(a)).length < expected && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 100))
    await new Promise((r) => setTimeout(r, 800)) // and no more arrive
    const after = await devices(a)
    expect(after.length).toBe(expected)
    const loop = after.find((d) => d.instance_id === loopback.txt[0]!.slice(3))
    // Its packet came from beta's address, so that is what is stored: never the advertised 127.0.0.1.
    if (loop) expect(loop.ip).toBe(pair.b.address)
    expect(after.every((d) => d.ip !== '127.0.0.1')).toBe(true)
  })
})

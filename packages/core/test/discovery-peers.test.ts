import { statSync } from 'node:fs'
import { join } from 'node:path'
import { DB_FILE_NAME, type Hub, type Peer, PeersService, type Sighting, silentLogger } from '@sharedllm/core'
import { afterEach, describe, expect, test } from 'vitest'
import { RemoteHost } from './discovery/remote-host'
import { registryFor, startHub, tempDir } from './helpers'

const REMOTE_ID = '0a1b2c3d-0000-4000-8000-remotehost01'

let remote: RemoteHost
let service: PeersService | undefined

afterEach(async () => {
  service?.stop()
  service = undefined
  await remote?.close()
})

async function setup(
  opts: { settings?: boolean; dataDir?: string; timeoutMs?: number; peerRow?: boolean } = {},
) {
  remote = new RemoteHost()
  const at = await remote.listen()
  const hub = await startHub({
    logger: silentLogger,
    discovery: false,
    providers: false,
    ollama: false,
    // Off by default now (the owner is asked first); these tests are about what happens when it is on.
    ...(opts.settings ? { settings: { auto_join_discovered_hosts: true } } : {}),
    ...(opts.dataDir ? { dataDir: opts.dataDir } : {}),
  })
  const now = Date.now()
  // A peer row as discovery writes it (discovery itself is covered by the mapping and namespace tests).
  if (opts.peerRow !== false)
    await hub.db('peers').insert({
      id: 'peer-1',
      instance_id: REMOTE_ID,
      name: 'gpu box',
      // An unreachable address first: the client must move on to the next one.
      addresses: JSON.stringify(['127.0.0.2', at.address]),
      port: at.port,
      version: '0.1.0',
      last_seen: now,
      online: true,
      status: 'discovered',
      created_at: now,
      updated_at: now,
    })
  service = new PeersService({
    db: () => hub.db,
    bus: hub.bus,
    log: silentLogger,
    selfName: () => 'laptop host',
    instanceId: 'self-instance-0001',
    pollIntervalMs: 30,
    timeoutMs: opts.timeoutMs ?? 1000,
    ...(opts.settings ? { settings: hub.settings } : {}),
    ...(opts.dataDir ? { dataDir: opts.dataDir } : {}),
  })
  return { hub, peers: service, port: at.port }
}

async function until(fn: () => Promise<boolean>, ms = 3000): Promise<void> {
  const end = Date.now() + ms
  while (!(await fn())) {
    if (Date.now() > end) throw new Error('condition not met in time')
    await new Promise((r) => setTimeout(r, 20))
  }
}

describe('PeersService against a host speaking the join API over HTTP', () => {
  test('join → pending → approved: the key is claimed once, kept, never listed; models via the gateway', async () => {
    const dataDir = tempDir()
    const { hub, peers } = await setup({ dataDir })
    const filed = await peers.join('peer-1')
    expect(filed).toMatchObject({ status: 'pending', has_key: false, error: null })
    const [request] = [...remote.requests.values()]
    expect(request?.body).toEqual({
      name: 'laptop host',
      platform: 'sharedLLM',
      instance_id: 'self-instance-0001',
    })

    // Joining again while waiting does not file a second request.
    expect((await peers.join('peer-1')).status).toBe('pending')
    expect(remote.joinCalls).toBe(1)

    // It keeps polling while the owner has not decided.
    await until(async () => remote.claimCalls >= 3)
    expect((await peers.get('peer-1')).status).toBe('pending')

    remote.approveAll()
    await until(async () => (await peers.get('peer-1')).status === 'joined')
    const peer = await peers.get('peer-1')
    expect(peer).toMatchObject({ status: 'joined', has_key: true, error: null })
    expect(JSON.stringify(await peers.list())).not.toContain(request!.key!)
    expect(Object.keys(peer)).not.toContain('device_key')
    const row = await hub.db('peers').where({ id: 'peer-1' }).first()
    expect(row.device_key).toBe(request!.key)
    expect(row.claim_secret).toBeNull()

    const models = (await peers.models('peer-1')) as Array<{ name: string }>
    expect(models).toHaveLength(16)
    expect(models[0]?.name).toBe('gemma3n:e4b')

    expect(statSync(dataDir).mode & 0o777).toBe(0o700)
    expect(statSync(join(dataDir, DB_FILE_NAME)).mode & 0o777).toBe(0o600)
    await expect(peers.join('peer-1')).rejects.toMatchObject({ code: 'CONFLICT' })
  })

  test('a host that approves on the spot is joined when join() returns', async () => {
    const { peers } = await setup()
    remote.approveOnJoin = true
    expect(await peers.join('peer-1')).toMatchObject({ status: 'joined', has_key: true })
  })

  test('a denial ends the wait', async () => {
    const { peers } = await setup()
    await peers.join('peer-1')
    remote.denyAll()
    await until(async () => (await peers.get('peer-1')).status === 'denied')
    await expect(peers.models('peer-1')).rejects.toMatchObject({ code: 'CONFLICT' })
  })

  test('approved without a key (claimed elsewhere) fails clearly', async () => {
    const { peers } = await setup()
    remote.misbehave = 'no-key'
    remote.approveOnJoin = true
    const peer = await peers.join('peer-1')
    expect(peer.status).toBe('failed')
    expect(peer.error).toMatch(/no key/)
  })

  test('a revoked key: listing models is FORBIDDEN and the peer says why', async () => {
    const { peers } = await setup()
    remote.approveOnJoin = true
    await peers.join('peer-1')
    for (const r of remote.requests.values()) r.key = 'sllm_rotated_elsewhere_0000'
    await expect(peers.models('peer-1')).rejects.toMatchObject({ code: 'FORBIDDEN' })
    expect((await peers.get('peer-1')).error).toMatch(/revoked/)
  })

  test('invalid, oversized and hanging responses are clear errors, recorded on the peer', async () => {
    const { peers } = await setup({ timeoutMs: 300 })
    remote.misbehave = 'garbage'
    await expect(peers.join('peer-1')).rejects.toMatchObject({
      code: 'UPSTREAM_ERROR',
      message: expect.stringMatching(/unexpected response \(request_id: /),
    })
    expect(await peers.get('peer-1')).toMatchObject({ status: 'failed' })
    remote.misbehave = 'huge'
    await expect(peers.join('peer-1')).rejects.toMatchObject({
      message: expect.stringMatching(/more than 65536 bytes/),
    })
    remote.misbehave = 'hang'
    await expect(peers.join('peer-1')).rejects.toMatchObject({ code: 'TIMEOUT' })
    expect((await peers.get('peer-1')).error).toMatch(/did not answer/)
  })

  test('answers are validated strictly: an extra key, a claim for another device, odd model entries', async () => {
    const first = await setup()
    remote.misbehave = 'extra-key'
    await expect(first.peers.join('peer-1')).rejects.toMatchObject({
      code: 'UPSTREAM_ERROR',
      message: expect.stringMatching(/unexpected response \(Unrecognized key: "role"\)|unexpected response/),
    })
    expect(await first.hub.db('peers').where({ id: 'peer-1' }).first()).toMatchObject({
      claim_secret: null,
      remote_device_id: null,
    })
    await remote.close()

    const second = await setup()
    remote.misbehave = 'other-device'
    remote.approveOnJoin = true
    const peer = await second.peers.join('peer-1')
    expect(peer).toMatchObject({ status: 'failed', has_key: false })
    expect(peer.error).toMatch(/another device/)
    await remote.close()

    const third = await setup()
    remote.approveOnJoin = true
    await third.peers.join('peer-1')
    remote.misbehave = 'odd-models'
    expect(await third.peers.models('peer-1')).toEqual([{ name: 'llama3:8b', size: 5 }])
  })

  test('an advert never moves a paired HTTP peer: its key goes only where it was paired', async () => {
    const { hub, peers, port } = await setup()
    remote.approveOnJoin = true
    expect(await peers.join('peer-1')).toMatchObject({ status: 'joined', has_key: true })
    // Someone else on the LAN advertises the peer's instance id at their own address.
    const impostor = new RemoteHost()
    await impostor.listen(port, '127.0.0.3')
    try {
      await registryOf(hub).seen({ ...advert(port), addresses: ['127.0.0.3'] })
      const row = await hub.db('peers').where({ id: 'peer-1' }).first()
      expect(JSON.parse(row.addresses)).toEqual(['127.0.0.2', '127.0.0.1'])
      expect(JSON.parse(row.proposed_addresses)).toEqual(['127.0.0.3'])
      // The real host is gone: the key is not tried at the advertised address.
      await remote.close()
      await expect(peers.models('peer-1')).rejects.toMatchObject({ code: 'UPSTREAM_UNAVAILABLE' })
      expect(impostor.seen).toEqual([])
    } finally {
      await impostor.close()
    }
  })

  test('an unreachable host is UPSTREAM_UNAVAILABLE; unknown peers are NOT_FOUND', async () => {
    const { peers } = await setup()
    await remote.close()
    await expect(peers.join('peer-1')).rejects.toMatchObject({ code: 'UPSTREAM_UNAVAILABLE' })
    await expect(peers.get('nope')).rejects.toMatchObject({ code: 'NOT_FOUND' })
    await expect(peers.join('x'.repeat(10_000))).rejects.toMatchObject({ code: 'NOT_FOUND' })
  })

  /** The remote host's advert, as the mDNS browser hands it to the registry. */
  const advert = (port: number): Sighting => ({
    fqdn: 'gpu box._sharedllm._tcp.local',
    instance_id: REMOTE_ID,
    name: 'gpu box',
    version: '0.1.0',
    port,
    // An unreachable address first: the client must move on to the next one.
    addresses: ['127.0.0.2', '127.0.0.1'],
    auth: 'required',
    extra: {},
  })
  const registryOf = (hub: Hub) => registryFor(hub, 'self-instance-0001')
  const peerOf = async (peers: PeersService) => (await peers.list()).find((p) => p.instance_id === REMOTE_ID)
  /** The host is advertised but does not listen yet: the auto-join fails and a retry is scheduled. */
  async function advertisedButClosed() {
    const s = await setup({ settings: true, peerRow: false })
    await remote.close()
    const registry = registryOf(s.hub)
    await registry.seen(advert(s.port))
    await until(async () => {
      const peer = await peerOf(s.peers)
      return peer?.status === 'failed' && /cannot reach .*; trying again in 1 s$/.test(peer.error ?? '')
    })
    return { ...s, registry }
  }

  test('auto_join_discovered_hosts files the request when the host is discovered', async () => {
    const { hub, peers, port } = await setup({ settings: true, peerRow: false })
    const updates: Peer[] = []
    hub.bus.on('peer_updated', ({ peer }) => updates.push(peer))
    expect(await registryOf(hub).seen(advert(port))).toBe('created')
    await until(async () => (await peerOf(peers))?.status === 'pending')
    expect(remote.joinCalls).toBe(1)
    expect(updates.map((u) => u.status)).toContain('joining')
  })

  test('auto-joins a host whose own join request arrived before its advert', async () => {
    // The other host found us first and filed its join: its device exists here before our browser sees it,
    // so the sighting discovers no new device; the new peer row must still start our join.
    const { hub, peers, port } = await setup({ settings: true, peerRow: false })
    const joined = await hub.access.join(
      { name: 'gpu box', platform: 'sharedLLM', instance_id: REMOTE_ID },
      '127.0.0.1',
    )
    expect(joined.status).toBe('pending')
    expect(await registryOf(hub).seen(advert(port))).toBe('updated')
    await until(async () => (await peerOf(peers))?.status === 'pending')
    expect(remote.joinCalls).toBe(1)
  })

  test('a host that advertises before it listens is auto-joined once it answers', async () => {
    const { peers, port } = await advertisedButClosed()
    await remote.listen(port)
    // Tried again on its own (after 1 s, then 2 s …), without the owner pressing Join.
    await until(async () => (await peerOf(peers))?.status === 'pending', 5000)
    expect(remote.joinCalls).toBe(1)
  })

  test('an unreachable host that went offline is tried again as soon as it is back', async () => {
    const { peers, port, registry } = await advertisedButClosed()
    await registry.gone(REMOTE_ID)
    await remote.listen(port)
    // Offline: the pending retry finds nothing to do.
    await new Promise((r) => setTimeout(r, 1500))
    expect(remote.joinCalls).toBe(0)
    const back = Date.now()
    await registry.seen(advert(port))
    await until(async () => (await peerOf(peers))?.status === 'pending')
    // Not by a timer: the 1 s one found it offline, and a 2 s one would fire only ~1.5 s from here.
    expect(Date.now() - back).toBeLessThan(1400)
  })

  test('a refusal is not retried on its own', async () => {
    const { hub, peers, port } = await setup({ settings: true, peerRow: false })
    remote.misbehave = 'garbage'
    const tries: string[] = []
    hub.bus.on('peer_updated', ({ peer }) => {
      if (peer.status === 'joining') tries.push(peer.id)
    })
    await registryOf(hub).seen(advert(port))
    await until(async () => (await peerOf(peers))?.status === 'failed')
    expect((await peerOf(peers))?.error).toMatch(/unexpected response/)
    await new Promise((r) => setTimeout(r, 1500))
    expect(tries).toHaveLength(1)
  })

  test('with auto_join off, discovery files nothing until it is turned on', async () => {
    const { hub, peers, port } = await setup({ settings: true, peerRow: false })
    await hub.settings.set('auto_join_discovered_hosts', false)
    await registryOf(hub).seen(advert(port))
    await new Promise((r) => setTimeout(r, 100))
    expect(remote.joinCalls).toBe(0)
    expect((await peerOf(peers))?.status).toBe('discovered')
    await hub.settings.set('auto_join_discovered_hosts', true)
    await until(async () => (await peerOf(peers))?.status === 'pending')
  })

  test('a wait interrupted by a restart resumes polling', async () => {
    const { hub, peers } = await setup()
    await peers.join('peer-1')
    peers.stop()
    remote.approveAll()
    service = new PeersService({
      db: () => hub.db,
      bus: hub.bus,
      log: silentLogger,
      selfName: () => 'laptop host',
      instanceId: 'self-instance-0001',
      pollIntervalMs: 30,
    })
    await service.resume()
    await until(async () => (await service!.get('peer-1')).status === 'joined')
  })
})

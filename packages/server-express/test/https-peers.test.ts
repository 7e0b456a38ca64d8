import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createHub, type Hub, PeersService, silentLogger } from '@sharedllm/core'
import { type FakeOllama, startFakeOllama } from '@sharedllm/core/testing'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { HostTls } from '../src/tls'
import { type HttpsHarness, startHttps } from './https-helpers'

// Two real hosts: the remote one served by listen() over HTTP + HTTPS; the local one joins it as a peer.
describe('a peer pins the CA it saw at its first join', () => {
  let fake: FakeOllama
  let remote: HttpsHarness
  let local: Hub
  let dir: string
  let peers: PeersService
  const warnings: string[] = []

  beforeAll(async () => {
    fake = await startFakeOllama()
    remote = await startHttps({ hub: { settings: { auto_start_ollama: false, ollama_host: fake.url } } })
    dir = await mkdtemp(join(tmpdir(), 'sllm-peer-local-'))
    local = createHub({
      dataDir: join(dir, 'data'),
      logger: silentLogger,
      providers: false,
      ollama: false,
      discovery: false,
    })
    await local.start()
    const now = Date.now()
    // The row discovery would write: the remote's plain-HTTP port, as mDNS advertises it.
    await local.db('peers').insert({
      id: 'peer-1',
      instance_id: remote.hub.instanceId,
      name: 'gpu box',
      addresses: JSON.stringify(['127.0.0.1']),
      port: remote.server.port,
      version: '0.1.0',
      last_seen: now,
      online: true,
      status: 'discovered',
      created_at: now,
      updated_at: now,
    })
    const log = { ...silentLogger, warn: (_o: unknown, msg?: string) => warnings.push(msg ?? '') }
    peers = new PeersService({
      db: () => local.db,
      bus: local.bus,
      log: { ...log, child: () => log } as typeof silentLogger,
      selfName: () => 'laptop host',
      instanceId: local.instanceId!,
      pollIntervalMs: 30,
      timeoutMs: 3000,
    })
  })
  afterAll(async () => {
    peers?.stop()
    await local?.stop()
    await remote?.cleanup()
    await fake?.stop()
    await rm(dir, { recursive: true, force: true })
  })

  it('joins over HTTPS with the pinned CA, and refuses the host once it presents another CA', async () => {
    const filed = await peers.join('peer-1')
    expect(filed.status).toBe('pending')
    const row = await local.db('peers').where({ id: 'peer-1' }).first()
    expect(row.ca_fingerprint).toBe(remote.tls.certs.caFingerprintSha256)
    expect(row.https_port).toBe(remote.server.https!.port)
    expect(row.ca_pem).toContain('BEGIN CERTIFICATE')

    // The remote owner approves; the key is claimed over the pinned HTTPS connection.
    const device = (await remote.hub.devices.list()).find((d) => d.name === 'laptop host')!
    expect(device.instance_id).toBe(local.instanceId)
    await remote.hub.devices.approve(device.id, 'role-user')
    await expect.poll(async () => (await peers.get('peer-1')).status, { timeout: 5000 }).toBe('joined')
    const models = (await peers.models('peer-1')) as Array<{ name: string }>
    expect(models.map((m) => m.name)).toContain('qwen3:1.7b')

    // The remote is reinstalled with a new CA (or someone impersonates it): refused, not downgraded.
    const otherDir = await mkdtemp(join(tmpdir(), 'sllm-other-ca-'))
    try {
      const other = await HostTls.create({ dataDir: otherDir })
      expect(other.certs.caFingerprintSha256).not.toBe(row.ca_fingerprint)
      remote.server.https!.server.setSecureContext({
        cert: other.certs.certChainPem,
        key: other.certs.keyPem,
      })
      await expect(peers.models('peer-1')).rejects.toMatchObject({ code: 'CERTIFICATE_MISMATCH' })
      expect((await peers.get('peer-1')).error).toMatch(/pinned CA/)
      // Still pinned to the first CA.
      const after = await local.db('peers').where({ id: 'peer-1' }).first()
      expect(after.ca_fingerprint).toBe(row.ca_fingerprint)
    } finally {
      remote.server.https!.server.setSecureContext({
        cert: remote.tls.certs.certChainPem,
        key: remote.tls.certs.keyPem,
      })
      await rm(otherDir, { recursive: true, force: true })
    }
  })

  it('moves a paired peer only to an address that answers with the pinned CA', async () => {
    const propose = async (addresses: string[]) => {
      await local
        .db('peers')
        .where({ id: 'peer-1' })
        .update({
          addresses: JSON.stringify(['127.0.0.9']),
          proposed_addresses: JSON.stringify(addresses),
        })
      // What the registry does after writing a proposal from an advert.
      local.bus.emit('peer_updated', { peer: await peers.get('peer-1') })
    }
    const addressesNow = async () =>
      JSON.parse((await local.db('peers').where({ id: 'peer-1' }).first()).addresses) as string[]

    // 127.0.0.1 presents another CA's certificate: not adopted.
    const otherDir = await mkdtemp(join(tmpdir(), 'sllm-other-ca-'))
    try {
      const other = await HostTls.create({ dataDir: otherDir })
      remote.server.https!.server.setSecureContext({
        cert: other.certs.certChainPem,
        key: other.certs.keyPem,
      })
      await propose(['127.0.0.1'])
      await expect
        .poll(() => warnings.includes('a new address of a peer did not prove its pinned CA'), {
          timeout: 5000,
        })
        .toBe(true)
      expect(await addressesNow()).toEqual(['127.0.0.9'])
    } finally {
      remote.server.https!.server.setSecureContext({
        cert: remote.tls.certs.certChainPem,
        key: remote.tls.certs.keyPem,
      })
      await rm(otherDir, { recursive: true, force: true })
    }
    // With the pinned CA's certificate: the peer moves there.
    await propose(['127.0.0.1'])
    await expect.poll(addressesNow, { timeout: 5000 }).toEqual(['127.0.0.1'])
    const models = (await peers.models('peer-1')) as Array<{ name: string }>
    expect(models.map((m) => m.name)).toContain('qwen3:1.7b')
  })
})

import { mkdtemp, rm } from 'node:fs/promises'
import { createServer, type Server } from 'node:https'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import {
  type Admission,
  Breaker,
  createHub,
  ensureHostCertificates,
  GATEWAY_ROUTES,
  type Hub,
  type Peer,
  type PeerStatusResponse,
  PoolService,
  type Principal,
  peerStatusSchema,
  silentLogger,
} from '../src/index'

const NOW = 1_800_000_000_000

describe('Breaker', () => {
  it('opens after 3 consecutive failures for 30 s, then lets exactly one trial through', () => {
    let now = NOW
    const b = new Breaker({ now: () => now })
    b.failure('refused')
    b.failure('refused')
    expect(b.view().state).toBe('closed')
    b.success()
    b.failure('a')
    b.failure('b')
    expect(b.allow()).toBe(true)
    b.failure('c')
    expect(b.view()).toMatchObject({
      state: 'open',
      failures: 3,
      open_until: NOW + 30_000,
      last_failure: 'c',
    })
    expect(b.allow()).toBe(false)
    now += 30_000
    expect(b.view().state).toBe('half_open')
    expect(b.allow()).toBe(true)
    // The trial is in flight: nobody else.
    expect(b.allow()).toBe(false)
    expect(b.available()).toBe(false)
    b.failure('trial failed')
    expect(b.view()).toMatchObject({ state: 'open', open_until: now + 30_000 })
    now += 30_000
    expect(b.allow()).toBe(true)
    b.success()
    expect(b.view()).toMatchObject({ state: 'closed', failures: 0, open_until: null })
  })
})

const valid: PeerStatusResponse = {
  instance_id: '11111111-2222-4333-8444-555555555555',
  name: 'gpu box',
  version: '0.1.0',
  free_mb: 20000,
  total_mb: 24000,
  allocation_mb: 4096,
  allowed_models: [],
  ollama_running: true,
  installed: [
    {
      name: 'llama3.2:3b',
      model: 'llama3.2:3b',
      digest: 'a'.repeat(64),
      size: 2_000_000_000,
      modified_at: '2026-01-01T00:00:00Z',
      details: { family: 'llama' },
      kv_bytes_per_token: 114688,
    },
  ],
  loaded: [],
}

describe('peerStatusSchema', () => {
  it('accepts a well-formed status and refuses unknown keys, wrong types and oversized lists', () => {
    expect(peerStatusSchema.safeParse(valid).success).toBe(true)
    expect(peerStatusSchema.safeParse({ ...valid, extra: 1 }).success).toBe(false)
    expect(peerStatusSchema.safeParse({ ...valid, free_mb: -1 }).success).toBe(false)
    expect(peerStatusSchema.safeParse({ ...valid, free_mb: '20000' }).success).toBe(false)
    expect(
      peerStatusSchema.safeParse({ ...valid, installed: [{ ...valid.installed[0], digest: 'nope' }] })
        .success,
    ).toBe(false)
    expect(
      peerStatusSchema.safeParse({ ...valid, installed: Array(2001).fill(valid.installed[0]) }).success,
    ).toBe(false)
    expect(peerStatusSchema.safeParse({ ...valid, name: 'x'.repeat(201) }).success).toBe(false)
  })
})

// A peer's HTTPS endpoint made here (real TLS, a CA made for it), whose answer each test sets.
describe('PoolService polls a peer over HTTPS with its pinned CA', () => {
  let dir: string
  let hub: Hub
  let server: Server
  let pool: PoolService
  let answer: () => { status: number; body: string } = () => ({ status: 200, body: JSON.stringify(valid) })
  const seen: Array<{ auth: string | undefined; url: string | undefined }> = []
  const updates: Peer[] = []

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sllm-pool-unit-'))
    const certs = await ensureHostCertificates({ dataDir: join(dir, 'peer'), addresses: ['127.0.0.1'] })
    server = createServer({ cert: certs.certChainPem, key: certs.keyPem }, (req, res) => {
      seen.push({ auth: req.headers.authorization, url: req.url })
      const a = answer()
      res.writeHead(a.status, { 'content-type': 'application/json' }).end(a.body)
    })
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    hub = createHub({
      dataDir: join(dir, 'data'),
      logger: silentLogger,
      providers: false,
      ollama: false,
      discovery: false,
      pool: false,
    })
    await hub.start()
    const now = Date.now()
    await hub.db('peers').insert({
      id: 'peer-1',
      instance_id: valid.instance_id,
      name: 'gpu box',
      addresses: JSON.stringify(['127.0.0.1']),
      port: 1,
      version: '0.1.0',
      last_seen: now,
      online: true,
      status: 'joined',
      device_key: `sllm_${'k'.repeat(43)}`,
      ca_pem: certs.caCertPem,
      ca_fingerprint: certs.caFingerprintSha256,
      https_port: (server.address() as AddressInfo).port,
      created_at: now,
      updated_at: now,
    })
    hub.on('peer_updated', ({ peer }) => updates.push(peer))
    pool = new PoolService({
      db: () => hub.db,
      bus: hub.bus,
      log: silentLogger,
      settings: hub.settings,
      policy: hub.policy,
      catalog: () => undefined,
      instanceId: () => hub.instanceId!,
      selfName: () => 'laptop',
      version: '0.1.0',
      freeMb: () => undefined,
      totalMb: () => undefined,
      ollamaRunning: () => false,
    })
  })
  afterAll(async () => {
    pool?.stop()
    server?.close()
    await hub?.stop()
    await rm(dir, { recursive: true, force: true })
  })

  const state = async () => (await pool.poolView({ kind: 'admin' })).hosts.find((h) => h.id === 'peer-1')

  it('a good answer makes the peer up, with our key sent only over the pinned HTTPS channel', async () => {
    await pool.pollAll()
    expect(await state()).toMatchObject({ up: true, free_mb: 20000, installed: ['llama3.2:3b'] })
    expect(seen.at(-1)).toEqual({ auth: `Bearer sllm_${'k'.repeat(43)}`, url: '/api/peer/status' })
    // The peer's estimate at a context: weights + KV per token × context + overhead.
    const e = pool.remoteEstimate('llama3.2:3b', 4096)
    expect(e?.totalBytes).toBe(2_000_000_000 + 114688 * 4096 + 256 * 1024 * 1024)
    expect(pool.remoteEstimate('qwen3:1.7b', 4096)).toBeUndefined()
  })

  it('a malformed or wrong-host answer is a missed poll; two in a row mark it down, on the row and the event', async () => {
    answer = () => ({ status: 200, body: JSON.stringify({ ...valid, surprise: true }) })
    await pool.pollAll()
    expect(await state()).toMatchObject({ up: true })
    answer = () => ({
      status: 200,
      body: JSON.stringify({ ...valid, instance_id: '99999999-2222-4333-8444-555555555555' }),
    })
    await pool.pollAll()
    expect(await state()).toMatchObject({ up: false })
    const row = await hub.db('peers').where({ id: 'peer-1' }).first()
    expect(row.error).toMatch(/not answering its status: .*another host/)
    const last = updates.at(-1)!
    expect(last.pool).toMatchObject({ up: false, missed: 2 })
    expect(pool.remoteEstimate('llama3.2:3b', 4096)).toBeUndefined()
    // Back: up again, and the error it wrote is cleared.
    answer = () => ({ status: 200, body: JSON.stringify(valid) })
    await pool.pollAll()
    expect(await state()).toMatchObject({ up: true })
    expect((await hub.db('peers').where({ id: 'peer-1' }).first()).error).toBeNull()
  })

  it('an oversized answer is refused, not kept', async () => {
    answer = () => ({ status: 200, body: JSON.stringify({ ...valid, name: 'x'.repeat(2 * 1024 * 1024) }) })
    await pool.pollAll()
    await pool.pollAll()
    expect(await state()).toMatchObject({ up: false })
    expect((await hub.db('peers').where({ id: 'peer-1' }).first()).error).toMatch(/more than 1048576 bytes/)
    answer = () => ({ status: 200, body: JSON.stringify(valid) })
  })

  it('a peer whose CA is not pinned is never polled (no plain HTTP for keys)', async () => {
    await hub.db('peers').where({ id: 'peer-1' }).update({ ca_pem: null, ca_fingerprint: null })
    const before = seen.length
    await pool.pollAll()
    await pool.pollAll()
    expect(seen.length).toBe(before)
    await vi.waitFor(async () =>
      expect((await hub.db('peers').where({ id: 'peer-1' }).first()).error).toMatch(/pooling needs HTTPS/),
    )
  })

  it('/api/peer/status is refused to the owner and to a device that is not a host', async () => {
    await expect(pool.status({ kind: 'admin' })).rejects.toMatchObject({ code: 'FORBIDDEN' })
    await expect(pool.status(null)).rejects.toMatchObject({ code: 'FORBIDDEN' })
  })
})

// Ranking: two peers (two rows, one HTTPS endpoint that answers each by the key it is sent).
describe('PoolService.plan ranks the peers that can serve a model', () => {
  let dir: string
  let hub: Hub
  let server: Server
  let pool: PoolService
  const docs = new Map<string, PeerStatusResponse>()
  const ids = { one: '11111111-2222-4333-8444-000000000001', two: '11111111-2222-4333-8444-000000000002' }
  const keyOf = (n: string) => `sllm_${n.padEnd(43, 'k')}`
  const model = (name: string, size = 2_000_000_000) => ({ ...valid.installed[0]!, name, model: name, size })
  const route = GATEWAY_ROUTES.get('/ollama/api/chat')!
  const device = (instance: string | null = null) =>
    ({
      kind: 'device',
      device: { id: 'dev-1', instance_id: instance, allocation_mb: 16384 },
      role: { allowed_models: [] },
      keyHint: 'x',
    }) as unknown as Principal
  const admission = (m: string) =>
    ({
      deviceId: 'dev-1',
      model: m,
      outgoing: {},
      stripUsageEvent: false,
      release: () => {},
      contextTokens: 4096,
    }) as Admission
  const set = (n: 'one' | 'two', patch: Partial<PeerStatusResponse>) =>
    docs.set(keyOf(n), { ...valid, instance_id: ids[n], name: n, ...patch })
  const order = async (m: string, p = device()) =>
    (await pool.plan(p, route, admission(m)))?.peers.map((c) => c.name) ?? null

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sllm-pool-rank-'))
    const certs = await ensureHostCertificates({ dataDir: join(dir, 'peer'), addresses: ['127.0.0.1'] })
    server = createServer({ cert: certs.certChainPem, key: certs.keyPem }, (req, res) => {
      const doc = docs.get((req.headers.authorization ?? '').slice(7))
      res.writeHead(doc ? 200 : 401, { 'content-type': 'application/json' }).end(JSON.stringify(doc ?? {}))
    })
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    hub = createHub({
      dataDir: join(dir, 'data'),
      logger: silentLogger,
      providers: false,
      ollama: false,
      discovery: false,
      pool: false,
    })
    await hub.start()
    const now = Date.now()
    for (const n of ['one', 'two'] as const) {
      await hub.db('peers').insert({
        id: `peer-${n}`,
        instance_id: ids[n],
        name: n,
        addresses: JSON.stringify(['127.0.0.1']),
        port: 1,
        version: '0.1.0',
        last_seen: now,
        online: true,
        status: 'joined',
        device_key: keyOf(n),
        ca_pem: certs.caCertPem,
        ca_fingerprint: certs.caFingerprintSha256,
        https_port: (server.address() as AddressInfo).port,
        created_at: now + (n === 'one' ? 0 : 1),
        updated_at: now,
      })
    }
    pool = new PoolService({
      db: () => hub.db,
      bus: hub.bus,
      log: silentLogger,
      settings: hub.settings,
      policy: hub.policy,
      catalog: () => undefined,
      instanceId: () => hub.instanceId!,
      selfName: () => 'laptop',
      version: '0.1.0',
      freeMb: () => undefined,
      totalMb: () => undefined,
      ollamaRunning: () => false,
    })
  })
  afterAll(async () => {
    pool?.stop()
    server?.close()
    await hub?.stop()
    await rm(dir, { recursive: true, force: true })
  })

  it('loaded there first, then fits its free memory, then the shorter queue; never past our slice there', async () => {
    const m = 'llama3.2:3b'
    const loaded = [
      {
        name: m,
        digest: 'a'.repeat(64),
        size: 3_000_000_000,
        size_vram: 3_000_000_000,
        context_length: 4096,
        expires_at: null,
      },
    ]
    set('one', { installed: [model(m)], free_mb: 20000 })
    set('two', { installed: [model(m)], free_mb: 100, loaded })
    await pool.pollAll()
    expect(await order(m)).toEqual(['two', 'one'])

    set('two', { installed: [model(m)], free_mb: 100 })
    await pool.pollAll()
    expect(await order(m)).toEqual(['one', 'two'])

    set('one', { installed: [model(m)], free_mb: 20000, queue: { [m]: 5 } })
    set('two', { installed: [model(m)], free_mb: 20000, queue: { [m]: 0 } })
    await pool.pollAll()
    expect(await order(m)).toEqual(['two', 'one'])

    // Our allocation on 'two' is smaller than the model needs there: 'two' would refuse it.
    set('two', { installed: [model(m)], free_mb: 20000, allocation_mb: 1024 })
    // 'one' lets our role there use only qwen models.
    set('one', { installed: [model(m)], free_mb: 20000, allowed_models: ['qwen3*'] })
    await pool.pollAll()
    expect(await order(m)).toBeNull()
  })

  it('routing off, a request from another host (no second hop) and a model no peer has stay here', async () => {
    set('one', { installed: [model('llama3.2:3b')], free_mb: 20000 })
    set('two', { installed: [model('llama3.2:3b')], free_mb: 20000 })
    await pool.pollAll()
    expect(await order('llama3.2:3b')).toHaveLength(2)
    expect(await order('llama3.2:3b', device('22222222-2222-4333-8444-000000000009'))).toBeNull()
    expect(await order('gemma3:4b')).toBeNull()
    await hub.settings.set('routing', 'off')
    try {
      expect(await order('llama3.2:3b')).toBeNull()
    } finally {
      await hub.settings.set('routing', 'local_first')
    }
  })
})

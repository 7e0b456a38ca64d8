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
  FairScheduler,
  GATEWAY_ROUTES,
  type Hub,
  type Peer,
  type PeerStatusResponse,
  PoolService,
  type PoolServiceOptions,
  type Principal,
  peerStatusSchema,
  SharedLLMError,
  silentLogger,
  VirtualClock,
} from '../src/index'
import { type GatewayHarness, startGateway } from './gateway-harness'

const NOW = 1_800_000_000_000

/** A joined peer row that the pool polls over HTTPS at `port` with the pinned CA `certs`. */
async function insertJoinedPeer(
  db: Hub['db'],
  peer: { id: string; instance_id: string; name: string; key: string; port: number; created_at?: number },
  certs: { caCertPem: string; caFingerprintSha256: string },
): Promise<void> {
  const now = Date.now()
  await db('peers').insert({
    id: peer.id,
    instance_id: peer.instance_id,
    name: peer.name,
    addresses: JSON.stringify(['127.0.0.1']),
    port: 1,
    version: '0.1.0',
    last_seen: now,
    online: true,
    status: 'joined',
    device_key: peer.key,
    ca_pem: certs.caCertPem,
    ca_fingerprint: certs.caFingerprintSha256,
    https_port: peer.port,
    created_at: peer.created_at ?? now,
    updated_at: now,
  })
}

/** A PoolService on `hub` named 'laptop', with no memory figures and Ollama stopped unless `extra` says. */
function poolOn(hub: Hub, extra: Partial<PoolServiceOptions> = {}): PoolService {
  return new PoolService({
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
    ...extra,
  })
}

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

  it('a trial that ends with no verdict (the client left) gives the trial back; the breaker is never stuck', () => {
    let now = NOW
    const b = new Breaker({ now: () => now })
    for (const r of ['a', 'b', 'c']) b.failure(r)
    now += 30_000
    expect(b.allow()).toBe(true)
    expect(b.allow()).toBe(false)
    b.release()
    expect(b.view().state).toBe('half_open')
    expect(b.allow()).toBe(true)
    b.success()
    expect(b.view().state).toBe('closed')
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
  let firstDelayMs = 300

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sllm-pool-unit-'))
    const certs = await ensureHostCertificates({ dataDir: join(dir, 'peer'), addresses: ['127.0.0.1'] })
    server = createServer({ cert: certs.certChainPem, key: certs.keyPem }, (req, res) => {
      seen.push({ auth: req.headers.authorization, url: req.url })
      const a = answer()
      // The first answer is slow, as one that came after a TLS handshake on a busy machine.
      const delay = firstDelayMs
      firstDelayMs = 0
      setTimeout(() => res.writeHead(a.status, { 'content-type': 'application/json' }).end(a.body), delay)
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
    await insertJoinedPeer(
      hub.db,
      {
        id: 'peer-1',
        instance_id: valid.instance_id,
        name: 'gpu box',
        key: `sllm_${'k'.repeat(43)}`,
        port: (server.address() as AddressInfo).port,
      },
      certs,
    )
    hub.on('peer_updated', ({ peer }) => updates.push(peer))
    pool = poolOn(hub)
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
    // The slow first answer does not weigh on the latency once a second one came.
    expect((await state())?.latency_ms).toBeGreaterThanOrEqual(300)
    await pool.pollAll()
    expect((await state())?.latency_ms).toBeLessThan(200)
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
    // /api/pool: the owner reads why; a device is told it is down, not the peer's address or the cause.
    expect(await state()).toMatchObject({ last_error: expect.stringMatching(/more than 1048576 bytes/) })
    const phone = {
      kind: 'device',
      device: { id: 'dev-p', instance_id: null, allocation_mb: 4096 },
      role: { allowed_models: [] },
      keyHint: 'x',
    } as unknown as Principal
    const seenByPhone = (await pool.poolView(phone)).hosts.find((h) => h.id === 'peer-1')
    expect(seenByPhone).toMatchObject({ up: false, last_error: null, breaker: { last_failure: null } })
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
      const port = (server.address() as AddressInfo).port
      const peer = { id: `peer-${n}`, instance_id: ids[n], name: n, key: keyOf(n), port }
      // 'one' joined first.
      await insertJoinedPeer(hub.db, { ...peer, created_at: now + (n === 'one' ? 0 : 1) }, certs)
    }
    pool = poolOn(hub)
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

    // The device's own slice holds at each peer's estimate: 2048 MiB takes the copy loaded at 1.5 GB on
    // 'two', not the one on 'one' that would load at 2 GB + KV cache + overhead.
    set('one', { installed: [model(m)], free_mb: 20000 })
    set('two', { installed: [model(m)], free_mb: 20000, loaded: [{ ...loaded[0]!, size: 1_500_000_000 }] })
    await pool.pollAll()
    const small = device()
    ;(small as unknown as { device: { allocation_mb: number } }).device.allocation_mb = 2048
    expect(await order(m, small)).toEqual(['two'])
    expect(await order(m)).toEqual(['two', 'one'])

    // Our allocation on 'two' is smaller than the model needs there: 'two' would refuse it.
    set('two', { installed: [model(m)], free_mb: 20000, allocation_mb: 1024 })
    // 'one' lets our role there use only qwen models.
    set('one', { installed: [model(m)], free_mb: 20000, allowed_models: ['qwen3*'] })
    await pool.pollAll()
    // Not installed here, and each peer that has it would refuse: a 403 saying why, not "not found".
    const refused = await pool.plan(device(), route, admission(m)).then(
      () => undefined,
      (e: unknown) => e,
    )
    expect(refused).toBeInstanceOf(SharedLLMError)
    expect((refused as SharedLLMError).status).toBe(403)
    expect((refused as SharedLLMError).message).toMatch(
      /^model 'llama3\.2:3b' is not installed here, and (one does not lend 'llama3\.2:3b' to this host .*; two needs about \d+ MiB for it, past the 1024 MiB it lends this host|two needs .*; one does not lend .*)$/,
    )
  })

  it('an MLX model loaded big on a peer is estimated at that context, not at the memory it holds so far', async () => {
    const m = 'qwen3-0.6b-mlx:latest'
    const mlx = {
      ...model(m, 1_192_099_840),
      details: { format: 'safetensors', family: 'qwen3' },
      kv_bytes_per_token: 114_688,
    }
    const loaded = [
      {
        name: m,
        digest: 'a'.repeat(64),
        size: 1_192_099_840,
        size_vram: 1_192_099_840,
        context_length: 32768,
        expires_at: null,
      },
    ]
    set('one', { installed: [mlx], free_mb: 20000, loaded, allocation_mb: 16384 })
    set('two', { installed: [], free_mb: 20000 })
    await pool.pollAll()
    const small = device()
    ;(small as unknown as { device: { allocation_mb: number } }).device.allocation_mb = 2048
    // At 4096 tokens it would fit 2 GiB; the runner there stays at 32768 (1.2 GB + 3.8 GB of cache).
    const refused = await pool.plan(small, route, admission(m)).then(
      () => undefined,
      (e: unknown) => e,
    )
    expect((refused as SharedLLMError).message).toMatch(
      /one needs about 4\d{3} MiB for it, past this device's 2048 MiB/,
    )
    expect(await order(m)).toEqual(['one'])
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

// The third trigger: a model installed and loaded here, whose queue here (a real FairScheduler on a virtual
// clock) would make a request wait longer than on a peer that reports its own wait.
describe('PoolService.plan: a request that would wait here longer than on a peer by more than the threshold', () => {
  const M = 'qwen3:1.7b'
  let gw: GatewayHarness
  let server: Server
  let pool: PoolService
  const ids = { one: '11111111-2222-4333-8444-000000000011', two: '11111111-2222-4333-8444-000000000012' }
  const keyOf = (n: string) => `sllm_${n.padEnd(43, 'q')}`
  const docs = new Map<string, PeerStatusResponse>()
  const clock = new VirtualClock(NOW)
  const sched = new FairScheduler({ clock, capacity: () => 1, loadedModels: () => [M] })
  const route = GATEWAY_ROUTES.get('/ollama/api/chat')!
  const device = {
    kind: 'device',
    device: { id: 'dev-w', instance_id: null, allocation_mb: 16384 },
    role: { allowed_models: [] },
    keyHint: 'x',
  } as unknown as Principal
  const admission = {
    deviceId: 'dev-w',
    model: M,
    outgoing: {},
    release: () => {},
    contextTokens: 4096,
  } as Admission
  const limits = {
    role_id: 'role-user',
    share_weight: 1,
    max_concurrent: 1,
    max_queued: 100,
    max_wait_s: 3600,
  }
  const peerDoc = (n: 'one' | 'two', patch: Partial<PeerStatusResponse>) => {
    const installed = [{ ...valid.installed[0]!, name: M, model: M, size: 1_000_000_000 }]
    docs.set(keyOf(n), { ...valid, instance_id: ids[n], name: n, installed, free_mb: 20000, ...patch })
  }
  const where = async () => (await pool.plan(device, route, admission))?.peers.map((c) => c.name) ?? null

  beforeAll(async () => {
    gw = await startGateway({ hub: { pool: false } })
    // Loaded here: local_first would keep it, and balanced ranks this host first (loaded beats fits).
    await fetch(`${gw.fake!.url}/api/generate`, { method: 'POST', body: JSON.stringify({ model: M }) })
    const certs = await ensureHostCertificates({
      dataDir: join(gw.hub.dataDir, 'peer'),
      addresses: ['127.0.0.1'],
    })
    server = createServer({ cert: certs.certChainPem, key: certs.keyPem }, (req, res) => {
      const d = docs.get((req.headers.authorization ?? '').slice(7))
      res.writeHead(d ? 200 : 401, { 'content-type': 'application/json' }).end(JSON.stringify(d ?? {}))
    })
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    for (const n of ['one', 'two'] as const) {
      const port = (server.address() as AddressInfo).port
      await insertJoinedPeer(
        gw.hub.db,
        { id: `peer-${n}`, instance_id: ids[n], name: n, key: keyOf(n), port },
        certs,
      )
    }
    pool = poolOn(gw.hub, {
      catalog: () => gw.hub.models,
      ollamaRunning: () => true,
      queueDepth: () => sched.depthByModel(),
      queueWaits: () => sched.waitByModel(),
      queueWaitMs: (m) => sched.expectedWaitMs(m),
      serviceMs: (m) => sched.serviceTimeMs(m),
    })
    // Teach the queue this model's service time (10 s), then hold it: one running, one waiting.
    const timed = await sched.submit({ id: 't', device_id: 'd0', model: M, limits, prompt_tokens: 1 }).granted
    clock.advance(10_000)
    timed.finish()
    await sched.submit({ id: 'run', device_id: 'd1', model: M, limits, prompt_tokens: 1 }).granted
    sched.submit({ id: 'wait', device_id: 'd2', model: M, limits, prompt_tokens: 1 })
    expect(sched.expectedWaitMs(M)).toBe(20_000)
    expect(await gw.hub.settings.get('routing_wait_threshold_s')).toBe(10)
  }, 30_000)
  afterAll(async () => {
    pool?.stop()
    server?.close()
    await gw?.close()
  })

  /** The peer 'one' reports this wait for M (ms), with one request waiting there. */
  const oneWaits = async (ms: number, patch: Partial<PeerStatusResponse> = {}) => {
    peerDoc('one', { queue: { [M]: 1 }, queue_wait_ms: { [M]: ms }, ...patch })
    await pool.pollAll()
  }

  it('local_first: fires just above the threshold (10 s), not at it or below; never under off', async () => {
    // Only 'one' has the model; 'two' is up with none.
    peerDoc('two', { installed: [] })
    // 20 s here against 10 s there: exactly the threshold.
    await oneWaits(10_000)
    expect(await where()).toBeNull()
    await oneWaits(10_001)
    expect(await where()).toBeNull()
    await oneWaits(9_999)
    expect(await where()).toEqual(['one'])
    // The same by the clock: 1 ms later the wait here is 19 999 ms, no longer more than 10 s over 9 999.
    clock.advance(1)
    expect(sched.expectedWaitMs(M)).toBe(19_999)
    expect(await where()).toBeNull()
    await oneWaits(9_998)
    expect(await where()).toEqual(['one'])
    // The threshold is the owner's setting, validated like the others.
    await gw.hub.settings.set('routing_wait_threshold_s', 12.5)
    expect(await where()).toBeNull()
    await oneWaits(7_498)
    expect(await where()).toEqual(['one'])
    await expect(gw.hub.settings.set('routing_wait_threshold_s', -1)).rejects.toMatchObject({
      code: 'VALIDATION',
    })
    await expect(gw.hub.settings.set('routing_wait_threshold_s', '5' as never)).rejects.toMatchObject({
      code: 'VALIDATION',
    })
    await gw.hub.settings.set('routing_wait_threshold_s', 10)
    // Requests waiting there with no estimate (none timed there yet) are not a shorter wait.
    peerDoc('one', { queue: { [M]: 3 } })
    await pool.pollAll()
    expect(await where()).toBeNull()
    // Nothing waits or runs for it there: 0 ms.
    peerDoc('one', {})
    await pool.pollAll()
    expect(await where()).toEqual(['one'])
    // A peer where it is not loaded and does not fit the free memory is no shorter wait.
    peerDoc('one', { free_mb: 10 })
    await pool.pollAll()
    expect(await where()).toBeNull()
    peerDoc('one', {})
    await pool.pollAll()
    await gw.hub.settings.set('routing', 'off')
    try {
      expect(await where()).toBeNull()
    } finally {
      await gw.hub.settings.set('routing', 'local_first')
    }
  })

  it('requests routed to a peer since its last status count on its wait and queue: no herd within a poll', async () => {
    peerDoc('two', { installed: [] })
    // 'one' looks idle (nothing runs or waits for M there): a wait of 0 against ~20 s here.
    peerDoc('one', {})
    await pool.pollAll()
    expect(await where()).toEqual(['one'])
    const count = (pool as unknown as { countRouted(s: unknown, m: string): void }).countRouted.bind(pool)
    const stateOne = (pool as unknown as { states: Map<string, unknown> }).states.get('peer-one')
    // One sent there: it holds a service time (10 s) there until the next status says otherwise.
    count(stateOne, M)
    // Here ~20 s, there now 10 s: no longer more than the threshold (10 s) apart.
    expect(sched.expectedWaitMs(M)).toBeGreaterThan(10_000)
    expect(sched.expectedWaitMs(M)).toBeLessThanOrEqual(20_000)
    expect(await where()).toBeNull()
    // The next status holds them (or not): counted from it again.
    await pool.pollAll()
    expect(await where()).toEqual(['one'])
  })

  it('balanced: this host ranks first (loaded here) unless the trigger fires; the host a conversation used keeps it within the threshold', async () => {
    const base = sched.expectedWaitMs(M)!
    peerDoc('two', { installed: [] })
    await gw.hub.settings.set('routing', 'balanced')
    try {
      // Loaded here, only installed there: by rank alone this host stays first (even with the longer wait).
      await oneWaits(base - 10_000, { queue: { [M]: 2 } })
      expect(await where()).toBeNull()
      await oneWaits(base - 10_001, { queue: { [M]: 2 } })
      expect(await where()).toEqual(['one'])

      // Loaded here and on 'one'. A longer queue there: this host first, and so it serves this device and
      // model; it keeps the conversation (its KV cache) while 'one' would start it sooner by at most the
      // threshold, though 'one' now has the shorter queue.
      const loaded = [
        {
          name: M,
          digest: '',
          size: 1_000_000_000,
          size_vram: 1_000_000_000,
          context_length: 4096,
          expires_at: null,
        },
      ]
      const depth = sched.depthByModel()[M] ?? 0
      await oneWaits(base, { queue: { [M]: depth + 1 }, loaded })
      expect(await where()).toBeNull()
      await oneWaits(base - 10_000, { queue: { [M]: 0 }, loaded })
      expect(await where()).toBeNull()
      await oneWaits(base - 10_001, { queue: { [M]: 0 }, loaded })
      expect(await where()).toEqual(['one'])

      // A model only the peers have, on both, loaded on neither; 'two' served this device and model last
      // (its KV cache is warm).
      const R = 'llama3.2:3b'
      const installed = [{ ...valid.installed[0]!, name: R, model: R }]
      ;(pool as unknown as { remember(key: string, host: string): void }).remember(`dev-w|${R}`, 'peer-two')
      const both = async (oneMs: number, twoMs: number) => {
        peerDoc('one', { installed, queue: { [R]: 0 }, queue_wait_ms: { [R]: oneMs } })
        peerDoc('two', { installed, queue: { [R]: 1 }, queue_wait_ms: { [R]: twoMs } })
        await pool.pollAll()
        return (await pool.plan(device, route, { ...admission, model: R }))?.peers.map((c) => c.name)
      }
      // 'two' has the longer queue but waits at most the threshold longer: the conversation stays there.
      expect(await both(0, 10_000)).toEqual(['two', 'one'])
      // Past the threshold it moves to the host where it starts sooner.
      expect(await both(0, 10_001)).toEqual(['one', 'two'])
    } finally {
      await gw.hub.settings.set('routing', 'local_first')
    }
  })

  it("the peer's side: /api/peer/status tells the waits of the models the caller may use, as the schema reads them", async () => {
    // A request for another model, held behind M's work (switching would evict M).
    sched.submit({ id: 'g', device_id: 'd3', model: 'gemma3:4b', limits, prompt_tokens: 1 })
    const host = (allowed: string[]) =>
      ({
        kind: 'device',
        device: { id: 'dev-h', instance_id: ids.two, allocation_mb: 4096 },
        role: { allowed_models: allowed },
        keyHint: 'x',
      }) as unknown as Principal
    const all = await pool.status(host([]))
    expect(all.queue).toEqual({ [M]: 1, 'gemma3:4b': 1 })
    expect(all.queue_wait_ms).toEqual({ [M]: sched.expectedWaitMs(M), 'gemma3:4b': 10_000 })
    expect(peerStatusSchema.safeParse(all).success).toBe(true)
    const some = await pool.status(host(['qwen3*']))
    expect(some.queue).toEqual({ [M]: 1 })
    expect(Object.keys(some.queue_wait_ms ?? {})).toEqual([M])
    expect(peerStatusSchema.safeParse({ ...all, queue_wait_ms: { [M]: -1 } }).success).toBe(false)
    expect(peerStatusSchema.safeParse({ ...all, queue_wait_ms: { [M]: 1.5 } }).success).toBe(false)
  })
})

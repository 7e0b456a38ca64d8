import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type Peer, PeersService, type PoolResponse, silentLogger } from '@sharedllm/core'
import { type FakeOllama, startFakeOllama } from '@sharedllm/core/testing'
import { Ollama } from 'ollama'
import OpenAI from 'openai'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { approvedDevice, ADMIN } from './helpers'
import { type HttpsHarness, startHttps } from './https-helpers'

// Pooling on loopback: host A (the 16 captured models) joins B and C over HTTPS with their pinned CAs;
// C alone has llama3.2:3b, B and C both have llama3.2:1b. A device of A uses them through A.
const POOL = { pollIntervalMs: 50, pollTimeoutMs: 1000, missesToDown: 5, connectTimeoutMs: 1000 }

describe('pooling: a device on A uses models of its joined peers', () => {
  const fakes: FakeOllama[] = []
  let a: HttpsHarness
  let b: HttpsHarness
  let c: HttpsHarness
  let dir: string
  let peersA: PeersService
  let device: { deviceId: string; key: string }
  const peerIds: Record<string, string> = {}
  const peerEvents: Peer[] = []

  const host = async (extra: string[]) => {
    const fake = await startFakeOllama({ extraModels: extra, chunkDelayMs: 2 })
    fakes.push(fake)
    return {
      fake,
      server: await startHttps({
        hub: { settings: { auto_start_ollama: false, ollama_host: fake.url }, pool: POOL },
      }),
    }
  }

  /** Joins `remote` from A as the discovery registry and PeersService would: row, join, approval, claim. */
  const pair = async (remote: HttpsHarness, name: string) => {
    const now = Date.now()
    const id = `peer-${name}`
    await a.hub.db('peers').insert({
      id,
      instance_id: remote.hub.instanceId,
      name,
      addresses: JSON.stringify(['127.0.0.1']),
      port: remote.server.port,
      version: '0.1.0',
      last_seen: now,
      online: true,
      status: 'discovered',
      created_at: now,
      updated_at: now,
    })
    await peersA.join(id)
    const onRemote = (await remote.hub.devices.list()).find((d) => d.instance_id === a.hub.instanceId)!
    await remote.hub.devices.approve(onRemote.id, 'role-user')
    await vi.waitFor(async () => expect((await peersA.get(id)).status).toBe('joined'), { timeout: 5000 })
    peerIds[name] = id
    return onRemote.id
  }

  let aOnB = ''
  let aOnC = ''
  let fakeC: FakeOllama
  let fakeB: FakeOllama

  beforeAll(async () => {
    const ha = await host([])
    const hb = await host(['llama3.2:1b'])
    const hc = await host(['llama3.2:1b', 'llama3.2:3b'])
    a = ha.server
    b = hb.server
    c = hc.server
    fakeB = hb.fake
    fakeC = hc.fake
    dir = await mkdtemp(join(tmpdir(), 'sllm-pool-'))
    peersA = new PeersService({
      db: () => a.hub.db,
      bus: a.hub.bus,
      log: silentLogger,
      selfName: () => 'host-a',
      instanceId: a.hub.instanceId!,
      pollIntervalMs: 30,
      timeoutMs: 3000,
    })
    a.hub.on('peer_updated', ({ peer }) => peerEvents.push(peer))
    aOnB = await pair(b, 'host-b')
    aOnC = await pair(c, 'host-c')
    device = await approvedDevice(a.hub, 'laptop', 'role-user')
    await vi.waitFor(
      async () =>
        expect(
          (await a.hub.pool!.poolView({ kind: 'admin' })).hosts.filter((h) => h.up && !h.self),
        ).toHaveLength(2),
      { timeout: 5000 },
    )
  }, 60_000)

  afterAll(async () => {
    peersA?.stop()
    for (const h of [a, b, c]) await h?.cleanup()
    for (const f of fakes) await f.stop()
    if (dir) await rm(dir, { recursive: true, force: true })
  })

  const ollamaOn = (h: HttpsHarness, key: string) =>
    new Ollama({ host: `${h.httpUrl}/ollama`, headers: { authorization: `Bearer ${key}` } })

  it('serves /api/peer/status only to a paired host, validated and filtered to its role', async () => {
    const res = await fetch(`${c.httpUrl}/api/peer/status`, {
      headers: { authorization: `Bearer ${device.key}` },
    })
    // A's laptop key is not a key of C at all.
    expect(res.status).toBe(401)
    const { key: phoneOnC } = await approvedDevice(c.hub, 'phone', 'role-user')
    const phone = await fetch(`${c.httpUrl}/api/peer/status`, {
      headers: { authorization: `Bearer ${phoneOnC}` },
    })
    expect(phone.status).toBe(403)
    const status = await a.hub.pool!.poolView({ kind: 'admin' })
    const onC = status.hosts.find((h) => h.name === 'host-c')!
    expect(onC.up).toBe(true)
    expect(onC.installed).toContain('llama3.2:3b')
  })

  it("lists the peers' models marked with their host (remote_host, owned_by)", async () => {
    const tags = await ollamaOn(a, device.key).list()
    const remote = tags.models.find((m) => m.name === 'llama3.2:3b') as unknown as { remote_host?: string }
    expect(remote?.remote_host).toBe('host-c')
    // A's own models carry no remote_host.
    expect(tags.models.find((m) => m.name === 'qwen3:1.7b')).not.toHaveProperty('remote_host')
    const openai = new OpenAI({ baseURL: `${a.httpUrl}/v1`, apiKey: device.key })
    const models = await openai.models.list()
    expect(models.data.find((m) => m.id === 'llama3.2:3b')?.owned_by).toBe('host-c')
  })

  it('streams a chat with a model only C has (ollama and openai clients); usage on A via C and on C under A', async () => {
    const stream = await ollamaOn(a, device.key).chat({
      model: 'llama3.2:3b',
      messages: [{ role: 'user', content: 'hello pooled world' }],
      stream: true,
    })
    let text = ''
    for await (const part of stream) text += part.message.content
    expect(text).toContain('hello pooled world')

    const openai = new OpenAI({ baseURL: `${a.httpUrl}/v1`, apiKey: device.key })
    const chunks = await openai.chat.completions.create({
      model: 'llama3.2:3b',
      messages: [{ role: 'user', content: 'via openai' }],
      stream: true,
    })
    let text2 = ''
    for await (const ch of chunks) text2 += ch.choices[0]?.delta?.content ?? ''
    expect(text2).toContain('via openai')

    await expect
      .poll(async () => (await a.hub.db('usage').where({ device_id: device.deviceId, via: 'host-c' })).length)
      .toBe(2)
    const onA = await a.hub.db('usage').where({ device_id: device.deviceId, via: 'host-c' })
    expect(onA.every((r) => r.completion_tokens > 0 && r.status === 200)).toBe(true)
    await expect.poll(async () => (await c.hub.db('usage').where({ device_id: aOnC })).length).toBe(2)
  })

  it('routing: local_first keeps a model this host has; balanced prefers the peer where it is loaded; off never leaves', async () => {
    const via = async () => {
      const rows = await a.hub
        .db('usage')
        .where({ device_id: device.deviceId, model: 'qwen3:1.7b' })
        .orderBy('id')
      return rows.at(-1)?.via ?? null
    }
    const ask = async () => {
      const res = await fetch(`${a.httpUrl}/ollama/api/chat`, {
        method: 'POST',
        headers: { authorization: `Bearer ${device.key}`, 'content-type': 'application/json' },
        body: JSON.stringify({
          model: 'qwen3:1.7b',
          messages: [{ role: 'user', content: 'where' }],
          stream: false,
        }),
      })
      expect(res.status).toBe(200)
      await res.arrayBuffer()
    }
    await fetch(`${fakeC.url}/api/generate`, {
      method: 'POST',
      body: JSON.stringify({ model: 'qwen3:1.7b' }),
    })
    await vi.waitFor(async () =>
      expect(
        (await a.hub.pool!.poolView({ kind: 'admin' })).hosts.find((h) => h.name === 'host-c')?.loaded,
      ).toContain('qwen3:1.7b'),
    )
    const count = async () =>
      (await a.hub.db('usage').where({ device_id: device.deviceId, model: 'qwen3:1.7b' })).length
    try {
      await ask()
      await vi.waitFor(async () => expect(await count()).toBe(1))
      expect(await via()).toBeNull()
      await a.hub.settings.set('routing', 'balanced')
      await ask()
      await vi.waitFor(async () => expect(await count()).toBe(2))
      expect(await via()).toBe('host-c')
      await a.hub.settings.set('routing', 'off')
      await ask()
      await vi.waitFor(async () => expect(await count()).toBe(3))
      expect(await via()).toBeNull()
      const tags = (await (
        await fetch(`${a.httpUrl}/ollama/api/tags`, { headers: { authorization: `Bearer ${device.key}` } })
      ).json()) as { models: Array<{ remote_host?: string }> }
      expect(tags.models.filter((m) => m.remote_host)).toHaveLength(0)
    } finally {
      await a.hub.settings.set('routing', 'local_first')
    }
  })

  it("refuses a model the device's role does not allow before any peer hears of it", async () => {
    await a.hub.roles.update('role-user', { allowed_models: ['qwen3*'] })
    try {
      await fakeC.clearRequests()
      const res = await fetch(`${a.httpUrl}/ollama/api/chat`, {
        method: 'POST',
        headers: { authorization: `Bearer ${device.key}`, 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'llama3.2:3b', messages: [{ role: 'user', content: 'x' }] }),
      })
      expect(res.status).toBe(403)
      expect((await fakeC.requests()).filter((r) => r.path === '/api/chat')).toHaveLength(0)
    } finally {
      await a.hub.roles.update('role-user', { allowed_models: [] })
    }
  })

  it("refuses a routed model past the device's own slice at the peer's estimate, on A, and does not list it", async () => {
    const before = (await a.hub.devices.get(device.deviceId)).allocation_mb
    // llama3.2:3b is 2 GB of weights on C alone: a 1 GiB slice cannot hold it.
    await a.hub.devices.setAllocation(device.deviceId, 1024)
    try {
      await fakeC.clearRequests()
      const res = await fetch(`${a.httpUrl}/ollama/api/chat`, {
        method: 'POST',
        headers: { authorization: `Bearer ${device.key}`, 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'llama3.2:3b', messages: [{ role: 'user', content: 'x' }] }),
      })
      expect(res.status).toBe(403)
      expect(((await res.json()) as { error: string }).error).toMatch(
        /model 'llama3\.2:3b' needs about \d+ MiB .* has 1024 MiB/,
      )
      expect((await fakeC.requests()).filter((r) => r.path === '/api/chat')).toHaveLength(0)
      const tags = await ollamaOn(a, device.key).list()
      expect(tags.models.map((m) => m.name)).not.toContain('llama3.2:3b')
    } finally {
      await a.hub.devices.setAllocation(device.deviceId, before)
    }
  })

  it("refuses a routed request past the device's own token budget on A before any peer hears of it", async () => {
    // The device has used tokens through C above; a budget of 1 token a day is spent.
    await a.hub.devices.setLimits(device.deviceId, { token_budget_day: 1 })
    try {
      await fakeC.clearRequests()
      const res = await fetch(`${a.httpUrl}/ollama/api/chat`, {
        method: 'POST',
        headers: { authorization: `Bearer ${device.key}`, 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'llama3.2:3b', messages: [{ role: 'user', content: 'x' }] }),
      })
      expect(res.status).toBe(429)
      expect(res.headers.get('retry-after')).toMatch(/^\d+$/)
      expect((await fakeC.requests()).filter((r) => r.path === '/api/chat')).toHaveLength(0)
    } finally {
      await a.hub.devices.setLimits(device.deviceId, { token_budget_day: null })
    }
  })

  it('revoking the device cuts its routed stream within 1 s', async () => {
    await fakeC.setMode('slow:0')
    const res = await fetch(`${a.httpUrl}/ollama/api/chat`, {
      method: 'POST',
      headers: { authorization: `Bearer ${device.key}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        model: 'llama3.2:3b',
        messages: [{ role: 'user', content: Array(400).fill('word').join(' ') }],
        options: { num_predict: 2000 },
      }),
    })
    expect(res.status).toBe(200)
    const reader = res.body!.getReader()
    await reader.read()
    const cut = Date.now()
    const other = await approvedDevice(a.hub, 'other')
    await a.hub.devices.revoke(device.deviceId)
    // Read to the end (or the cut): the answer must not have run to its last line.
    let text = ''
    const decoder = new TextDecoder()
    try {
      for (;;) {
        const r = await reader.read()
        if (r.done) break
        text += decoder.decode(r.value, { stream: true })
      }
    } catch {
      // The cut connection: what the client sees of a revoked key mid-stream.
    }
    expect(text).not.toContain('"done":true')
    expect(Date.now() - cut).toBeLessThan(1000)
    device = other
  })

  const chat = (model: string, content: string) =>
    fetch(`${a.httpUrl}/ollama/api/chat`, {
      method: 'POST',
      headers: { authorization: `Bearer ${device.key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model, messages: [{ role: 'user', content }], stream: false }),
    })
  const chatsOn = async (f: FakeOllama) => (await f.requests()).filter((r) => r.path === '/api/chat').length
  const poolState = () => a.hub.pool!.poolView({ kind: 'admin' })

  it('a request that would wait on A longer than on a peer by more than routing_wait_threshold_s goes there; within it, it waits on A', async () => {
    const M = 'granite3.3:2b'
    const stream = async () => {
      const res = await fetch(`${a.httpUrl}/ollama/api/chat`, {
        method: 'POST',
        headers: { authorization: `Bearer ${device.key}`, 'content-type': 'application/json' },
        body: JSON.stringify({
          model: M,
          messages: [{ role: 'user', content: Array(300).fill('word').join(' ') }],
        }),
      })
      expect(res.status).toBe(200)
      const reader = res.body!.getReader()
      await reader.read()
      return reader
    }
    const drain = async (r: Awaited<ReturnType<typeof stream>>) => {
      while (!(await r.read()).done) {}
    }
    const rows = () => a.hub.db('usage').where({ device_id: device.deviceId, model: M }).orderBy('id')
    // Loaded on B (where it starts at once); A learns its service time from one whole answer here.
    await fetch(`${fakeB.url}/api/generate`, { method: 'POST', body: JSON.stringify({ model: M }) })
    await vi.waitFor(async () =>
      expect((await poolState()).hosts.find((h) => h.name === 'host-b')?.loaded).toContain(M),
    )
    await drain(await stream())
    await vi.waitFor(async () => expect(await rows()).toHaveLength(1))
    expect((await rows())[0].via).toBeNull()
    // One answer running on A holds its one slot: the next would wait about one service time there.
    let held = await stream()
    expect((await chat(M, 'within the default threshold')).status).toBe(200)
    await drain(held)
    await vi.waitFor(async () => expect(await rows()).toHaveLength(3))
    expect((await rows()).map((r) => r.via)).toEqual([null, null, null])
    await a.hub.settings.set('routing_wait_threshold_s', 0.05)
    try {
      held = await stream()
      const routed = await chat(M, 'past the threshold')
      expect(routed.status).toBe(200)
      expect(((await routed.json()) as { message: { content: string } }).message.content).toContain(
        'past the threshold',
      )
      await drain(held)
      await vi.waitFor(async () => expect(await rows()).toHaveLength(5))
      expect((await rows()).map((r) => r.via).sort()).toEqual(['host-b', null, null, null, null].sort())
    } finally {
      await a.hub.settings.set('routing_wait_threshold_s', 10)
    }
  })

  it("C at its limit for A (429) before the first byte: the request goes to B, C's breaker untouched; all at their limit is a 429", async () => {
    // llama3.2:1b loaded on C and not on B: C ranks first.
    await fetch(`${fakeC.url}/api/generate`, {
      method: 'POST',
      body: JSON.stringify({ model: 'llama3.2:1b' }),
    })
    await fetch(`${fakeB.url}/api/generate`, {
      method: 'POST',
      body: JSON.stringify({ model: 'llama3.2:1b', keep_alive: 0 }),
    })
    await expect
      .poll(async () => {
        const hosts = (await poolState()).hosts
        return [
          hosts.find((h) => h.name === 'host-c')?.loaded.includes('llama3.2:1b'),
          hosts.find((h) => h.name === 'host-b')?.loaded.includes('llama3.2:1b'),
        ]
      })
      .toEqual([true, false])
    // C's owner gives host A no tokens today: C answers A's requests 429 (a budget of 0 is used up).
    await c.hub.devices.setLimits(aOnC, { token_budget_day: 0 })
    await fakeB.clearRequests()
    await fakeC.clearRequests()
    try {
      const res = await chat('llama3.2:1b', 'C has no room for A')
      expect(res.status).toBe(200)
      expect(((await res.json()) as { message: { content: string } }).message.content).toContain('no room')
      expect(await chatsOn(fakeB)).toBe(1)
      expect(await chatsOn(fakeC)).toBe(0)
      expect((await poolState()).hosts.find((h) => h.name === 'host-c')?.breaker?.failures).toBe(0)
      // Only C has llama3.2:3b: the device hears a 429 with Retry-After (C's reset), not a 503 blaming C.
      const limited = await chat('llama3.2:3b', 'nowhere to go')
      expect(limited.status).toBe(429)
      expect(Number(limited.headers.get('retry-after'))).toBeGreaterThan(0)
      expect(((await limited.json()) as { error: string }).error).toMatch(
        /every host of the pool that has 'llama3.2:3b' is at its limit for this host: host-c: .*daily token budget/,
      )
      expect((await poolState()).hosts.find((h) => h.name === 'host-c')?.breaker?.failures).toBe(0)
    } finally {
      await c.hub.devices.setLimits(aOnC, { token_budget_day: null })
      await fetch(`${fakeB.url}/api/generate`, {
        method: 'POST',
        body: JSON.stringify({ model: 'llama3.2:1b', keep_alive: 0 }),
      })
    }
  })

  it('C cut mid-stream: the client gets a clean error (the stream is cut), no retry on B', async () => {
    await fakeB.clearRequests()
    const res = await fetch(`${a.httpUrl}/ollama/api/chat`, {
      method: 'POST',
      headers: { authorization: `Bearer ${device.key}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        model: 'llama3.2:3b',
        messages: [{ role: 'user', content: Array(300).fill('word').join(' ') }],
      }),
    })
    expect(res.status).toBe(200)
    const reader = res.body!.getReader()
    await reader.read()
    // C goes away with the answer half sent.
    c.server.https!.server.closeAllConnections()
    const outcome = await (async () => {
      let text = ''
      try {
        for (;;) {
          const r = await reader.read()
          if (r.done) return { cut: false, text }
          text += Buffer.from(r.value).toString()
        }
      } catch {
        return { cut: true, text }
      }
    })()
    expect(outcome.cut).toBe(true)
    expect(outcome.text).not.toContain('"done":true')
    expect(await chatsOn(fakeB)).toBe(0)
    // The breaker counted it; a good answer from C closes it again.
    const ok = await chat('llama3.2:3b', 'back again')
    expect(ok.status).toBe(200)
    expect((await poolState()).hosts.find((h) => h.name === 'host-c')?.breaker?.failures).toBe(0)
  })

  it("C failing before the first byte (5xx): the request goes to B; C's breaker opens after 3 in a row", async () => {
    // llama3.2:1b loaded on C and not on B: C ranks first.
    await fetch(`${fakeC.url}/api/generate`, {
      method: 'POST',
      body: JSON.stringify({ model: 'llama3.2:1b' }),
    })
    await expect
      .poll(async () => (await poolState()).hosts.find((h) => h.name === 'host-c')?.loaded)
      .toContain('llama3.2:1b')
    await fakeB.clearRequests()
    await fakeC.clearRequests()
    // What the tests before left, written (the recorders batch their rows).
    await Promise.all([a.hub.recorder.flush(), b.hub.recorder.flush()])
    const servedOnB = (await b.hub.db('usage').where({ device_id: aOnB, status: 200 })).length
    const viaB = (await a.hub.db('usage').where({ device_id: device.deviceId, via: 'host-b' })).length
    await fakeC.setMode('queue-full') // Ollama's 503 on every inference request: C's gateway answers 5xx
    try {
      const res = await chat('llama3.2:1b', 'failover please')
      expect(res.status).toBe(200)
      expect(((await res.json()) as { message: { content: string } }).message.content).toContain(
        'failover please',
      )
      expect(await chatsOn(fakeC)).toBe(1)
      expect(await chatsOn(fakeB)).toBe(1)
      await vi.waitFor(async () =>
        expect(await b.hub.db('usage').where({ device_id: aOnB, status: 200 })).toHaveLength(servedOnB + 1),
      )
      await vi.waitFor(async () =>
        expect(await a.hub.db('usage').where({ device_id: device.deviceId, via: 'host-b' })).toHaveLength(
          viaB + 1,
        ),
      )

      // Only C has llama3.2:3b: two more failures in a row open C's breaker (3 consecutive).
      for (let i = 0; i < 2; i++) {
        const r = await chat('llama3.2:3b', `fail ${i}`)
        expect(r.status).toBe(503)
        expect(((await r.json()) as { error: string }).error).toMatch(/host-c/)
      }
      // The dashboard's view (GET /api/pool; /api/peers carries the same under each peer's `pool`).
      const view = (await (await fetch(`${a.httpUrl}/api/pool`, { headers: ADMIN })).json()) as PoolResponse
      expect(view.hosts.find((h) => h.name === 'host-c')?.breaker).toMatchObject({
        state: 'open',
        failures: 3,
      })
      // Open: C is not asked at all.
      await fakeC.clearRequests()
      const refused = await chat('llama3.2:3b', 'while open')
      expect(refused.status).toBe(503)
      expect(refused.headers.get('retry-after')).toBeTruthy()
      expect(await chatsOn(fakeC)).toBe(0)
    } finally {
      await fakeC.setMode('normal')
    }
  })

  it("B revoking A's key: B's 401 is B failing (a 503 naming it), never passed to the device as its own 401", async () => {
    // C's breaker is open (above), so B is the only candidate for llama3.2:1b.
    await b.hub.devices.revoke(aOnB)
    const res = await chat('llama3.2:1b', 'after revoke')
    expect(res.status).toBe(503)
    expect(((await res.json()) as { error: string }).error).toMatch(/host-b: failed \(401\)/)
    expect((await poolState()).hosts.find((h) => h.name === 'host-b')?.breaker?.failures).toBe(1)
  })
})

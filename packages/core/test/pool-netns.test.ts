// Three real sharedLLM servers (the built CLI), each in its own network namespace on one bridge, each with
// its own stand-in Ollama: A has the 16 captured models, B also llama3.2:1b, C llama3.2:1b and llama3.2:3b.
// They find each other over mDNS and join (auto_join_discovered_hosts); B and C approve A. A device of A
// then uses C's and B's models through A, over HTTPS with the pinned CAs.
//
// Needs the built CLI (the test command builds first); skips loudly without root or `ip`.
import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import type { Device, Peer, PoolResponse, UsageResponse } from '@sharedllm/core'
import { fakeOllamaDir } from '@sharedllm/core/testing'
import { afterAll, beforeAll, describe, expect, test, vi } from 'vitest'
import { createNetnsLan, type NetnsLan, netnsUnavailable } from './discovery/netns'

const unavailable = netnsUnavailable()
const root = new URL('../../..', import.meta.url).pathname
const coreDir = new URL('..', import.meta.url).pathname
const cli = join(root, 'packages/server-express/dist/cli.js')
const ADMIN = 'sllm_admin_pool-namespace-secret-0001'
const PORT = 18080
const HTTPS_PORT = 18443
const admin = { authorization: `Bearer ${ADMIN}` }

/** A JSON-lines child inside a namespace (ns-pool-client.ts or ns-mallory.ts). */
class NsChild {
  private readonly child: ChildProcess
  private readonly replies = new Map<number, (r: { result?: unknown; error?: string }) => void>()
  private next = 1
  readonly ready: Promise<void>
  constructor(ns: string, script: string, args: string[] = []) {
    this.child = spawn(
      'ip',
      ['netns', 'exec', ns, process.execPath, '--import', 'tsx', `test/discovery/${script}`, ...args],
      { cwd: coreDir, stdio: ['pipe', 'pipe', 'inherit'] },
    )
    this.ready = new Promise((resolve, reject) => {
      this.child.once('exit', (code) => reject(new Error(`${script} in ${ns} exited (${code})`)))
      createInterface({ input: this.child.stdout! }).on('line', (line) => {
        const msg = JSON.parse(line) as { id?: number; ready?: boolean; result?: unknown; error?: string }
        if (msg.ready) resolve()
        else if (msg.id !== undefined) this.replies.get(msg.id)?.(msg)
      })
    })
    this.ready.catch(() => {})
  }
  async call<T>(cmd: string, args: Record<string, unknown> = {}): Promise<T> {
    await this.ready
    const id = this.next++
    return new Promise((resolve, reject) => {
      this.replies.set(id, (msg) => {
        this.replies.delete(id)
        if (msg.error) reject(new Error(msg.error))
        else resolve(msg.result as T)
      })
      this.child.stdin!.write(`${JSON.stringify({ id, cmd, args })}\n`)
    })
  }
  http<T>(method: string, url: string, body?: unknown, headers: Record<string, string> = admin) {
    return this.call<{ status: number; body: T; headers: Record<string, string> }>('http', {
      method,
      url,
      body,
      headers,
    })
  }
  close() {
    this.child.kill('SIGKILL')
  }
}

/** Polls `fn` until truthy; on timeout the error carries what `state` says. */
async function until<T>(
  fn: () => Promise<T | undefined | false>,
  ms: number,
  what: string,
  state?: () => Promise<unknown>,
): Promise<T> {
  const end = Date.now() + ms
  for (;;) {
    const v = await fn()
    if (v) return v
    if (Date.now() > end) {
      const seen = state ? `; last seen: ${JSON.stringify(await state())}` : ''
      throw new Error(`timed out after ${ms} ms waiting for ${what}${seen}`)
    }
    await new Promise((r) => setTimeout(r, 50))
  }
}

describe.skipIf(unavailable !== null)('three pooled sharedLLM hosts (network namespaces)', () => {
  let lan: NetnsLan
  let clientA: NsChild
  let clientB: NsChild
  let clientC: NsChild
  let mallory: NsChild
  const servers: ChildProcess[] = []
  const dirs: string[] = []
  const url: string[] = []
  let key = ''
  let deviceId = ''
  let aOnC = ''

  const serve = (i: number, name: string, extraModels: string) => {
    const h = lan.hosts[i]!
    const dir = mkdtempSync(join(tmpdir(), 'sllm-pool-'))
    dirs.push(dir)
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ auto_join_discovered_hosts: true }))
    // Each host its own UTS namespace, so each has its own host name (the name peers list it under).
    const child = spawn(
      'ip',
      [
        'netns',
        'exec',
        h.ns,
        'unshare',
        '--uts',
        'sh',
        '-c',
        'hostname "$0" && exec "$@"',
        name,
        process.execPath,
        cli,
        '--port',
        String(PORT),
        '--https-port',
        String(HTTPS_PORT),
        '--data-dir',
        dir,
        '--host',
        h.address,
      ],
      {
        env: {
          ...process.env,
          SHAREDLLM_ADMIN_TOKEN: ADMIN,
          PATH: `${fakeOllamaDir}:${process.env.PATH}`,
          FAKE_OLLAMA_EXTRA_MODELS: extraModels,
          FAKE_OLLAMA_RECORD: '1',
          FAKE_OLLAMA_THINK_DEFAULT: 'off',
          FAKE_OLLAMA_CHUNK_DELAY_MS: '3',
        },
        stdio: ['ignore', 'ignore', 'inherit'],
      },
    )
    servers.push(child)
    url.push(`http://${h.address}:${PORT}`)
  }

  const peersOn = async (i: number) =>
    (await clientA.http<{ peers: Peer[] }>('GET', `${url[i]}/api/peers`)).body.peers ?? []
  const devicesOn = async (i: number) =>
    (await clientA.http<{ devices: Device[] }>('GET', `${url[i]}/api/devices`)).body.devices ?? []
  const chatsOn = async (client: NsChild) =>
    (
      await client.http<Array<{ path: string }>>(
        'GET',
        'http://127.0.0.1:11434/__fake/requests',
        undefined,
        {},
      )
    ).body.filter((r) => r.path === '/api/chat').length
  const poolOnA = async () => (await clientA.http<PoolResponse>('GET', `${url[0]}/api/pool`)).body
  const chatA = (model: string, content: string) =>
    clientA.http<{ message?: { content: string }; error?: string }>(
      'POST',
      `${url[0]}/ollama/api/chat`,
      { model, messages: [{ role: 'user', content }], stream: false },
      { authorization: `Bearer ${key}` },
    )

  beforeAll(async () => {
    lan = createNetnsLan('slp', 4)
    serve(0, 'host-a', '')
    serve(1, 'host-b', 'llama3.2:1b')
    serve(2, 'host-c', 'llama3.2:1b,llama3.2:3b')
    clientA = new NsChild(lan.hosts[0]!.ns, 'ns-pool-client.ts')
    clientB = new NsChild(lan.hosts[1]!.ns, 'ns-pool-client.ts')
    clientC = new NsChild(lan.hosts[2]!.ns, 'ns-pool-client.ts')
    mallory = new NsChild(lan.hosts[3]!.ns, 'ns-mallory.ts', [String(PORT), String(HTTPS_PORT)])
    for (const u of url) {
      await until(async () => (await clientA.http('GET', `${u}/healthz`)).status === 200, 20_000, `${u} up`)
    }
    const aInstance = await until(
      async () => (await devicesOn(1)).find((d) => d.ip === lan.hosts[0]!.address)?.instance_id,
      10_000,
      'A discovered by B',
    )
    // B and C approve A's join request (A files it on its own; an approval belongs to the request seen, so
    // wait until A has filed it).
    await until(
      async () => (await peersOn(0)).filter((p) => p.status === 'pending').length === 2,
      10_000,
      'A filed its join requests',
      () => peersOn(0),
    )
    for (const i of [1, 2]) {
      const aHere = await until(
        async () => (await devicesOn(i)).find((d) => d.instance_id === aInstance && d.status === 'pending'),
        10_000,
        `A pending on ${i}`,
      )
      const ok = await clientA.http('POST', `${url[i]}/api/devices/${aHere.id}/approve`, {
        role_id: 'role-user',
      })
      expect(ok.status).toBe(200)
      if (i === 2) aOnC = aHere.id
    }
    await until(
      async () => {
        const peers = await peersOn(0)
        return (
          peers.filter((p) => p.status === 'joined' && p.pool?.up).length === 2 &&
          (await poolOnA()).hosts.filter((h) => h.up && !h.self).length === 2
        )
      },
      15_000,
      'A polls B and C',
      () => peersOn(0),
    )
    // A device of A: join, approval, claim.
    const join = await clientA.http<{ request_id: string; claim_secret: string; device_id: string }>(
      'POST',
      `${url[0]}/api/join`,
      { name: 'laptop' },
      {},
    )
    deviceId = join.body.device_id
    await clientA.http('POST', `${url[0]}/api/devices/${deviceId}/approve`, { role_id: 'role-user' })
    const claim = await clientA.http<{ device_key: string }>(
      'GET',
      `${url[0]}/api/join/${join.body.request_id}`,
      undefined,
      { 'x-claim-secret': join.body.claim_secret },
    )
    key = claim.body.device_key
    expect(key).toMatch(/^sllm_/)
  }, 90_000)

  afterAll(async () => {
    for (const c of [clientA, clientB, clientC, mallory]) c?.close()
    await Promise.all(
      servers.map(
        (s) =>
          new Promise<void>((resolve) => {
            if (s.exitCode !== null || s.signalCode !== null) return resolve()
            const timer = setTimeout(() => s.kill('SIGKILL'), 5000)
            s.once('exit', () => {
              clearTimeout(timer)
              resolve()
            })
            s.kill('SIGTERM')
          }),
      ),
    )
    lan?.destroy()
    for (const d of dirs) rmSync(d, { recursive: true, force: true })
  })

  test('a device on A streams a chat with a model only C has (ollama and openai clients); usage on A via C, on C under A', async () => {
    const tags = await clientA.http<{ models: Array<{ name: string; remote_host?: string }> }>(
      'GET',
      `${url[0]}/ollama/api/tags`,
      undefined,
      { authorization: `Bearer ${key}` },
    )
    expect(tags.body.models.find((m) => m.name === 'llama3.2:3b')?.remote_host).toBe('host-c')
    const viaOllama = await clientA.call<{ text: string; chunks: number }>('ollama', {
      base: url[0],
      key,
      model: 'llama3.2:3b',
      content: 'pooled over the namespaces',
    })
    expect(viaOllama.text).toContain('pooled over the namespaces')
    expect(viaOllama.chunks).toBeGreaterThan(3)
    const viaOpenai = await clientA.call<{ text: string }>('openai', {
      base: url[0],
      key,
      model: 'llama3.2:3b',
      content: 'and with openai',
    })
    expect(viaOpenai.text).toContain('and with openai')

    const usageA = await until(
      async () => {
        const u = (await clientA.http<UsageResponse>('GET', `${url[0]}/api/usage`)).body.recent
        const mine = u.filter((r) => r.device_id === deviceId && r.via === 'host-c' && r.status === 200)
        return mine.length === 2 && mine
      },
      5000,
      'usage on A via host-c',
    )
    expect(usageA.every((r) => r.completion_tokens > 0)).toBe(true)
    await until(
      async () =>
        (await clientA.http<UsageResponse>('GET', `${url[2]}/api/usage`)).body.recent.filter(
          (r) => r.device_id === aOnC && r.status === 200,
        ).length === 2,
      5000,
      'usage on C under A',
    )
  })

  test('a forged advert for C at another address gets no key; A keeps using C where it was paired', async () => {
    const c = (await peersOn(0)).find((p) => p.name === 'host-c')!
    const tls = (await clientA.http<{ ca_fingerprint: string }>('GET', `${url[2]}/api/tls`, undefined, {}))
      .body
    await mallory.call('spoof', {
      adverts: [
        {
          label: 'host-c',
          port: PORT,
          address: lan.hosts[3]!.address,
          txt: [
            `id=${c.instance_id}`,
            'v=0.1.0',
            `port=${PORT}`,
            'auth=required',
            'name=host-c',
            `https=${HTTPS_PORT}`,
            `ca=${tls.ca_fingerprint}`,
          ],
        },
      ],
    })
    // A checks the new address against C's pinned CA: a TLS hello reaches mallory, nothing more.
    const seen = await until(
      async () => {
        const got = await mallory.call<Array<{ port: number; data: string }>>('captured')
        return got.some((g) => g.port === HTTPS_PORT) && got
      },
      10_000,
      'A trying the forged address',
    )
    for (const g of seen) {
      expect(g.data).not.toMatch(/sllm_|authorization|x-claim-secret/i)
      // Nothing was sent in the clear to the plain-HTTP port.
      expect(g.port).toBe(HTTPS_PORT)
    }
    expect((await peersOn(0)).find((p) => p.name === 'host-c')!.addresses).toEqual([lan.hosts[2]!.address])
    const after = await chatA('llama3.2:3b', 'still C')
    expect(after.status).toBe(200)
    expect(after.body.message?.content).toContain('still C')
  })

  test('C hung (SIGSTOP) before its first byte: once A marks it down the request goes to B, not after the 300 s deadline', async () => {
    // llama3.2:1b loaded on C (not on B): C is the first choice.
    await clientC.http('POST', 'http://127.0.0.1:11434/api/generate', { model: 'llama3.2:1b' }, {})
    await until(
      async () => (await poolOnA()).hosts.find((h) => h.name === 'host-c')?.loaded.includes('llama3.2:1b'),
      10_000,
      'A sees llama3.2:1b loaded on C',
    )
    const before = await chatsOn(clientB)
    // A stopped process: its kernel still takes connections, nothing answers them (nor A's status polls).
    servers[2]!.kill('SIGSTOP')
    try {
      const started = Date.now()
      const out = await chatA('llama3.2:1b', 'C hangs')
      expect(out.status).toBe(200)
      expect(out.body.message?.content).toContain('C hangs')
      expect(await chatsOn(clientB)).toBe(before + 1)
      // Two missed polls (3 s apart, 2.5 s each) mark C down; well inside the headers deadline.
      expect(Date.now() - started).toBeLessThan(20_000)
      const c = (await poolOnA()).hosts.find((h) => h.name === 'host-c')
      expect(c?.up).toBe(false)
      expect(c?.breaker?.failures).toBe(1)
    } finally {
      servers[2]!.kill('SIGCONT')
    }
    await until(
      async () => (await poolOnA()).hosts.find((h) => h.name === 'host-c')?.up,
      15_000,
      'C up again',
    )
    // A good answer from C closes its breaker's count again.
    expect((await chatA('llama3.2:3b', 'C is back')).status).toBe(200)
    expect((await poolOnA()).hosts.find((h) => h.name === 'host-c')?.breaker?.failures).toBe(0)
    // B unloads the model it loaded for this request, so C stays the first choice of the next tests.
    await clientB.http(
      'POST',
      'http://127.0.0.1:11434/api/generate',
      { model: 'llama3.2:1b', keep_alive: 0 },
      {},
    )
    await until(
      async () => !(await poolOnA()).hosts.find((h) => h.name === 'host-b')?.loaded.includes('llama3.2:1b'),
      10_000,
      'A sees llama3.2:1b unloaded on B',
    )
  })

  test('C killed mid-stream: the client stream is cut (no half answer passed as whole), no retry on B', async () => {
    // llama3.2:1b loaded on C (not on B) makes C the first choice for the next test.
    await clientC.http('POST', 'http://127.0.0.1:11434/api/generate', { model: 'llama3.2:1b' }, {})
    await until(
      async () => (await poolOnA()).hosts.find((h) => h.name === 'host-c')?.loaded.includes('llama3.2:1b'),
      10_000,
      'A sees llama3.2:1b loaded on C',
    )
    const before = await chatsOn(clientB)
    const started = await clientA.call<{ status: number; first: string }>('stream', {
      name: 'long',
      base: url[0],
      key,
      model: 'llama3.2:3b',
      content: Array(400).fill('token').join(' '),
    })
    expect(started.status).toBe(200)
    servers[2]!.kill('SIGKILL')
    const end = await clientA.call<{ cut: boolean; text: string }>('streamEnd', { name: 'long' })
    expect(end.cut).toBe(true)
    expect(end.text).not.toContain('"done":true')
    expect(await chatsOn(clientB)).toBe(before)
  })

  test("C gone before the request: it goes to B (which has the model); C's breaker opens after 3 failures", async () => {
    const before = await chatsOn(clientB)
    const out = await chatA('llama3.2:1b', 'failover to B')
    expect(out.status).toBe(200)
    expect(out.body.message?.content).toContain('failover to B')
    expect(await chatsOn(clientB)).toBe(before + 1)
    // Only C has llama3.2:3b: each try fails on C (the stream cut above was its first failure).
    const refused = await chatA('llama3.2:3b', 'C is gone')
    expect(refused.status).toBe(503)
    expect(refused.body.error).toMatch(/host-c/)
    const c = (await peersOn(0)).find((p) => p.name === 'host-c')!
    expect(c.pool?.breaker).toMatchObject({ state: 'open' })
    expect(c.pool!.breaker.failures).toBeGreaterThanOrEqual(3)
    // Usage rows are written in batches (at least every second), so wait for the row rather than read once.
    await vi.waitFor(
      async () => {
        const usage = (await clientA.http<UsageResponse>('GET', `${url[0]}/api/usage`)).body.recent
        expect(usage.some((r) => r.device_id === deviceId && r.via === 'host-b' && r.status === 200)).toBe(
          true,
        )
      },
      { timeout: 5000, interval: 100 },
    )
  })
  test('a request that would wait on A longer than on B by more than routing_wait_threshold_s goes to B', async () => {
    const M = 'granite3.3:2b'
    const long = Array(400).fill('token').join(' ')
    // Loaded on B (it starts there at once); A learns its service time from one whole answer served here.
    await clientB.http('POST', 'http://127.0.0.1:11434/api/generate', { model: M }, {})
    await until(
      async () => (await poolOnA()).hosts.find((h) => h.name === 'host-b')?.loaded.includes(M),
      10_000,
      'A sees the model loaded on B',
    )
    const stream = { base: url[0], key, model: M, content: long }
    expect((await clientA.call<{ status: number }>('stream', { ...stream, name: 'teach' })).status).toBe(200)
    expect((await clientA.call<{ cut: boolean }>('streamEnd', { name: 'teach' })).cut).toBe(false)
    const set = await clientA.http('PUT', `${url[0]}/api/settings/routing_wait_threshold_s`, { value: 0.05 })
    expect(set.status).toBe(200)
    const before = await chatsOn(clientB)
    // One answer running on A holds its one slot: the next would wait there, and starts at once on B.
    expect((await clientA.call<{ status: number }>('stream', { ...stream, name: 'held' })).status).toBe(200)
    const routed = await chatA(M, 'sooner on B')
    expect(routed.status).toBe(200)
    expect(routed.body.message?.content).toContain('sooner on B')
    expect((await clientA.call<{ cut: boolean }>('streamEnd', { name: 'held' })).cut).toBe(false)
    expect(await chatsOn(clientB)).toBe(before + 1)
    await vi.waitFor(
      async () => {
        const usage = (await clientA.http<UsageResponse>('GET', `${url[0]}/api/usage`)).body.recent
        const mine = usage.filter((r) => r.device_id === deviceId && r.model === M)
        expect(mine.map((r) => r.via ?? null).sort()).toEqual(['host-b', null, null].sort())
      },
      { timeout: 5000, interval: 100 },
    )
  })
})

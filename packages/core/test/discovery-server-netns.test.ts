// Two real sharedLLM servers (the built CLI) in two network namespaces: they find each other over mDNS,
// each files a join request to the other (auto_join_discovered_hosts), the owner of one approves, and the
// other claims its key and lists the remote models through the remote gateway.
//
// Needs the built CLI (the test command builds first); skips loudly without root or `ip`.
import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import type { Device, Peer } from '@sharedllm/core'
import { fakeOllamaDir } from '@sharedllm/core/testing'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { createNetnsPair, type NetnsPair, netnsUnavailable } from './discovery/netns'

const unavailable = netnsUnavailable()
const root = new URL('../../..', import.meta.url).pathname
const cli = join(root, 'packages/server-express/dist/cli.js')
const ADMIN = 'sllm_admin_namespace-test-secret-0001'
const PORT = 18080
const admin = { authorization: `Bearer ${ADMIN}` }
const fixtureNames = (
  JSON.parse(
    readFileSync(new URL('./discovery/fixtures/api-tags-16-models-local.json', import.meta.url), 'utf8'),
  ) as { models: Array<{ name: string }> }
).models.map((m) => m.name)

/** HTTP from inside namespace `ns` (the test itself runs in the root namespace). */
class NsHttp {
  private readonly child: ChildProcess
  private readonly replies = new Map<number, (r: { status: number; body: unknown }) => void>()
  private next = 1
  constructor(ns: string) {
    this.child = spawn(
      'ip',
      ['netns', 'exec', ns, process.execPath, join(import.meta.dirname, 'discovery/ns-http.mjs')],
      {
        stdio: ['pipe', 'pipe', 'inherit'],
      },
    )
    createInterface({ input: this.child.stdout! }).on('line', (line) => {
      const msg = JSON.parse(line) as { id: number; status: number; body: unknown }
      this.replies.get(msg.id)?.(msg)
    })
  }
  request<T>(
    method: string,
    url: string,
    body?: unknown,
    headers = admin,
  ): Promise<{ status: number; body: T }> {
    const id = this.next++
    return new Promise((resolve) => {
      this.replies.set(id, resolve as (r: { status: number; body: unknown }) => void)
      this.child.stdin!.write(`${JSON.stringify({ id, method, url, headers, body })}\n`)
    })
  }
  close() {
    this.child.kill('SIGKILL')
  }
}

/** Polls `fn` until truthy; on timeout the error carries what `state` says, so a CI failure explains itself. */
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
    await new Promise((r) => setTimeout(r, 100))
  }
}

describe.skipIf(unavailable !== null)(
  'two sharedLLM servers join each other over mDNS (network namespaces)',
  () => {
    let pair: NetnsPair
    let http: NsHttp
    const servers: ChildProcess[] = []
    const dirs: string[] = []
    let urlA = ''
    let urlB = ''

    const serve = (ns: string, address: string) => {
      const dir = mkdtempSync(join(tmpdir(), 'sllm-srv-'))
      dirs.push(dir)
      // Auto-join is off by default (the owner is asked first): these two hosts are told to, by config file.
      writeFileSync(join(dir, 'config.json'), JSON.stringify({ auto_join_discovered_hosts: true }))
      const child = spawn(
        'ip',
        [
          'netns',
          'exec',
          ns,
          process.execPath,
          cli,
          '--port',
          String(PORT),
          '--data-dir',
          dir,
          '--host',
          address,
        ],
        {
          // The fake `ollama` first on PATH: the server's auto-start runs it inside the namespace.
          env: { ...process.env, SHAREDLLM_ADMIN_TOKEN: ADMIN, PATH: `${fakeOllamaDir}:${process.env.PATH}` },
          stdio: ['ignore', 'ignore', 'inherit'],
        },
      )
      servers.push(child)
      return { dir, url: `http://${address}:${PORT}` }
    }

    beforeAll(async () => {
      pair = createNetnsPair('sls')
      http = new NsHttp(pair.a.ns)
      const a = serve(pair.a.ns, pair.a.address)
      const b = serve(pair.b.ns, pair.b.address)
      urlA = a.url
      urlB = b.url
      for (const url of [urlA, urlB]) {
        await until(
          async () => (await http.request('GET', `${url}/healthz`)).status === 200,
          20_000,
          `${url} up`,
        )
      }
    })

    afterAll(async () => {
      http?.close()
      // Graceful stop, so each CLI stops the Ollama it started; SIGKILL only if that takes too long.
      await Promise.all(
        servers.map(
          (s) =>
            new Promise<void>((resolve) => {
              if (s.exitCode !== null || s.signalCode !== null) return resolve()
              const timer = setTimeout(() => s.kill('SIGKILL'), 10_000)
              s.once('exit', () => {
                clearTimeout(timer)
                resolve()
              })
              s.kill('SIGTERM')
            }),
        ),
      )
      pair?.destroy()
      for (const d of new Set(dirs)) rmSync(d, { recursive: true, force: true })
    })

    const pendingOn = async (url: string) =>
      (await http.request<{ devices: Device[] }>('GET', `${url}/api/devices?status=pending`)).body.devices ??
      []
    const peersOn = async (url: string) =>
      (await http.request<{ peers: Peer[] }>('GET', `${url}/api/peers`)).body.peers ?? []

    test('each shows the other as pending within 5 s, as one device (discovery and join merged)', async () => {
      const [onA, onB] = await Promise.all([
        until(
          async () => (await pendingOn(urlA)).find((d) => d.ip === pair.b.address),
          5000,
          'B pending on A',
        ),
        until(
          async () => (await pendingOn(urlB)).find((d) => d.ip === pair.a.address),
          5000,
          'A pending on B',
        ),
      ])
      expect(onA.instance_id).toBeTruthy()
      expect(onB.instance_id).toBeTruthy()
      await new Promise((r) => setTimeout(r, 1000)) // let the automatic join requests land
      const all = (await http.request<{ devices: Device[] }>('GET', `${urlB}/api/devices`)).body.devices
      expect(all.filter((d) => d.instance_id === onB.instance_id)).toHaveLength(1)
    })

    test('approving on B lets A claim its key and list the models of B', async () => {
      const aOnB = (await pendingOn(urlB)).find((d) => d.ip === pair.a.address)!
      const approved = await http.request('POST', `${urlB}/api/devices/${aOnB.id}/approve`, {
        role_id: 'role-admin',
      })
      expect(approved.status).toBe(200)

      const peer = await until(
        async () =>
          (await peersOn(urlA)).find((p) => p.addresses[0] === pair.b.address && p.status === 'joined'),
        10_000,
        'A joined B',
        async () => ({ peersOnA: await peersOn(urlA), devicesOnB: await pendingOn(urlB) }),
      )
      expect(peer.has_key).toBe(true)
      expect(JSON.stringify(await peersOn(urlA))).not.toMatch(/sllm_[A-Za-z0-9_-]{40}/)

      const models = await http.request<{ models: Array<{ name: string }> }>(
        'GET',
        `${urlA}/api/peers/${peer.id}/models`,
      )
      expect(models.status).toBe(200)
      expect(Array.isArray(models.body.models)).toBe(true)
      for (const m of models.body.models) expect(fixtureNames).toContain(m.name)

      // The key is kept in A's data dir: owner-only.
      expect(statSync(dirs[0]!).mode & 0o777).toBe(0o700)
      expect(statSync(join(dirs[0]!, 'sharedllm.db')).mode & 0o777).toBe(0o600)
    })

    test('B stopping (goodbye) marks it offline on A', async () => {
      const bOnA = (
        await http.request<{ devices: Device[] }>('GET', `${urlA}/api/devices`)
      ).body.devices.find((d) => d.ip === pair.b.address)!
      servers[1]!.kill('SIGTERM')
      await until(
        async () => {
          const d = (await http.request<{ devices: Device[] }>('GET', `${urlA}/api/devices`)).body.devices
          return d.find((x) => x.id === bOnA.id && !x.online)
        },
        5000,
        'B offline on A',
      )
    })
  },
)

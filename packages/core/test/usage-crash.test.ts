import { spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { expect, test } from 'vitest'
import { integrityCheck, openStore } from '../src/index'
import { tempDir } from './helpers'

const writer = fileURLToPath(new URL('./fixtures/usage-crash-writer.ts', import.meta.url))
const tsx = fileURLToPath(import.meta.resolve('tsx'))

function gone(pid: number): boolean {
  // PID 1 here does not reap orphans: a zombie counts as gone.
  try {
    return /State:\s+Z/.test(readFileSync(`/proc/${pid}/status`, 'utf8'))
  } catch {
    return true
  }
}

interface Round {
  acks: Array<{ endpoint: string; at: number }>
  /** When the signal was sent (same machine clock as the child's acks). */
  signalledAt: number
  code: number | null
}

/** Runs the writer until it has acknowledged `minAcks` records, then sends `signal`. */
function run(dataDir: string, prefix: string, minAcks: number, signal: NodeJS.Signals): Promise<Round> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', tsx, writer, dataDir, prefix], {
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    const acks: Round['acks'] = []
    let buf = ''
    let stderr = ''
    let signalledAt = 0
    child.stderr.on('data', (c: Buffer) => {
      stderr += c.toString()
    })
    child.stdout.on('data', (chunk: Buffer) => {
      buf += chunk.toString()
      let nl = buf.indexOf('\n')
      while (nl >= 0) {
        const line = buf.slice(0, nl)
        buf = buf.slice(nl + 1)
        const m = /^ack (\S+) (\d+)$/.exec(line)
        if (m) acks.push({ endpoint: m[1] as string, at: Number(m[2]) })
        nl = buf.indexOf('\n')
      }
      if (!signalledAt && acks.length >= minAcks) {
        signalledAt = Date.now()
        child.kill(signal)
      }
    })
    child.on('exit', (code, sig) => {
      if (signal === 'SIGKILL' && sig !== 'SIGKILL')
        reject(new Error(`writer exited on its own (${code}): ${stderr}`))
      else if (!gone(child.pid ?? 0)) reject(new Error('writer still running after the signal'))
      else resolve({ acks, signalledAt, code })
    })
  })
}

test('SIGKILL of a writer, 5 times: a crash loses at most the last second of usage, rollups match the raw rows', async () => {
  const dataDir = tempDir()
  const all: Array<{ endpoint: string; at: number }> = []
  let lost = 0
  let maxLostAgeMs = 0
  for (let round = 0; round < 5; round++) {
    const r = await run(dataDir, `r${round}`, 1500 + Math.floor(Math.random() * 4000), 'SIGKILL')
    all.push(...r.acks)
    const store = await openStore(dataDir)
    try {
      expect(await integrityCheck(store.knex)).toBe('ok')
      const stored = new Set(
        (await store.knex('usage').select('endpoint')).map((x: { endpoint: string }) => x.endpoint),
      )
      for (const a of r.acks) {
        if (stored.has(a.endpoint)) continue
        lost++
        maxLostAgeMs = Math.max(maxLostAgeMs, r.signalledAt - a.at)
      }
      // The bound: anything acknowledged more than a second before the kill is on disk.
      const old = r.acks.filter((a) => a.at < r.signalledAt - 1000 && !stored.has(a.endpoint))
      expect(old, `round ${round}: records older than 1 s lost`).toEqual([])
      // Raw rows and rollups are written in one transaction: they never disagree.
      const [sum] = await store.knex('usage_hourly').sum({ n: 'requests' })
      const [count] = await store.knex('usage').count({ n: '*' })
      expect(Number(sum?.n)).toBe(Number(count?.n))
    } finally {
      await store.close()
    }
  }
  expect(all.length).toBeGreaterThan(7500)
  // The buffer really was in memory when the kill came (else the bound says nothing).
  expect(lost).toBeGreaterThan(0)
  expect(maxLostAgeMs).toBeLessThanOrEqual(1000)
}, 120_000)

test('SIGTERM (a clean stop) writes everything that was acknowledged', async () => {
  const dataDir = tempDir()
  const r = await run(dataDir, 'term', 2000, 'SIGTERM')
  expect(r.code).toBe(0)
  const store = await openStore(dataDir)
  try {
    const stored = new Set(
      (await store.knex('usage').select('endpoint')).map((x: { endpoint: string }) => x.endpoint),
    )
    expect(r.acks.filter((a) => !stored.has(a.endpoint))).toEqual([])
  } finally {
    await store.close()
  }
}, 60_000)

import { spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { expect, test } from 'vitest'
import { integrityCheck, openStore } from '../src/index'
import { tempDir } from './helpers'

const writer = fileURLToPath(new URL('./fixtures/crash-writer.ts', import.meta.url))
const tsx = fileURLToPath(import.meta.resolve('tsx'))

function gone(pid: number): boolean {
  // PID 1 here does not reap orphans: a zombie counts as gone.
  try {
    return /State:\s+Z/.test(readFileSync(`/proc/${pid}/status`, 'utf8'))
  } catch {
    return true
  }
}

/** Runs the writer until it has acknowledged `minAcks` writes plus a random extra delay, then SIGKILLs it. */
function runAndKill(dataDir: string, round: number, minAcks: number): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', tsx, writer, dataDir, `r${round}`], {
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    const acks: string[] = []
    let buf = ''
    let stderr = ''
    let killTimer: NodeJS.Timeout | undefined
    child.stderr.on('data', (c: Buffer) => {
      stderr += c.toString()
    })
    child.stdout.on('data', (chunk: Buffer) => {
      buf += chunk.toString()
      let nl = buf.indexOf('\n')
      while (nl >= 0) {
        const line = buf.slice(0, nl)
        buf = buf.slice(nl + 1)
        if (line.startsWith('ack ')) acks.push(line.slice(4))
        nl = buf.indexOf('\n')
      }
      if (!killTimer && acks.length >= minAcks) {
        killTimer = setTimeout(() => child.kill('SIGKILL'), Math.floor(Math.random() * 40))
      }
    })
    child.on('exit', (code, signal) => {
      if (signal !== 'SIGKILL') reject(new Error(`writer exited on its own (${code}): ${stderr}`))
      else if (!gone(child.pid ?? 0)) reject(new Error('writer still running after SIGKILL'))
      // Lines after the last newline were never fully written: not acknowledged.
      else resolve(acks)
    })
  })
}

test('SIGKILL during writes, 20 times: integrity_check is ok and every acknowledged write is there', async () => {
  const dataDir = tempDir()
  const acknowledged: string[] = []
  for (let round = 0; round < 20; round++) {
    acknowledged.push(...(await runAndKill(dataDir, round, 5 + (round % 4) * 5)))
    const store = await openStore(dataDir)
    try {
      expect(await integrityCheck(store.knex)).toBe('ok')
      const ids = new Set((await store.knex('devices').select('id')).map((r: { id: string }) => r.id))
      const missing = acknowledged.filter((id) => !ids.has(id))
      expect(missing, `round ${round}: acknowledged writes lost`).toEqual([])
    } finally {
      await store.close()
    }
  }
  expect(acknowledged.length).toBeGreaterThan(200)
}, 120_000)

import { execFile } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { afterAll, expect, test } from 'vitest'

const main = fileURLToPath(new URL('../main.mjs', import.meta.url))
const dataDir = mkdtempSync(join(tmpdir(), 'embed-test-'))
afterAll(() => rmSync(dataDir, { recursive: true, force: true }))

test('the example runs against the built core and prints what it says it does', async () => {
  const { stdout } = await promisify(execFile)(process.execPath, [main, dataDir], { timeout: 30_000 })
  expect(stdout).toContain('event: Kitchen tablet asks to join')
  expect(stdout).toMatch(/event: Kitchen tablet approved with \d+ MiB/)
  expect(stdout).toContain('device: Kitchen tablet is approved as role-guest')
  expect(stdout).toMatch(/refused: CAPACITY_EXCEEDED memory_mb: 999999 MiB is above the 2048 MiB maximum/)
  if (existsSync('/proc/meminfo')) {
    // On Linux the RAM provider reports the machine's memory, as /proc/meminfo says.
    const total = Number(/MemTotal:\s+(\d+) kB/.exec(readFileSync('/proc/meminfo', 'utf8'))?.[1]) * 1024
    const line = /memory: ram:\S+ system [\d.]+ \/ ([\d.]+) GiB used/.exec(stdout)
    expect(line, stdout).not.toBeNull()
    expect(Number(line?.[1])).toBeCloseTo(total / 2 ** 30, 1)
  }
  expect(existsSync(join(dataDir, 'sharedllm.db'))).toBe(true)
})

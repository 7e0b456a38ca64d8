import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir, totalmem } from 'node:os'
import { join } from 'node:path'
import { createRealHost, isCommandMissing, isSharedLLMError } from '@sharedllm/core'
import { expect, test } from 'vitest'

const host = createRealHost()
const node = process.execPath

test('runs a real command and returns stdout, stderr and the exit code (non-zero resolves)', async () => {
  const r = await host.exec(node, [
    '-e',
    'process.stdout.write("out"); process.stderr.write("err"); process.exit(3)',
  ])
  expect(r).toEqual({ stdout: 'out', stderr: 'err', exitCode: 3 })
})

test('a missing binary rejects with a recognisable NOT_FOUND / ENOENT error', async () => {
  const err = await host.exec('sharedllm-no-such-tool', []).catch((e: unknown) => e)
  expect(isSharedLLMError(err, 'NOT_FOUND')).toBe(true)
  expect(isCommandMissing(err)).toBe(true)
  expect((err as Error).message).toMatch(/sharedllm-no-such-tool/)
})

function isGone(pid: number): boolean {
  // PID 1 here does not reap orphans, so a killed child may linger as a zombie: read its state.
  try {
    return /State:\s+Z/.test(readFileSync(`/proc/${pid}/status`, 'utf8'))
  } catch {
    return true
  }
}

test('a hung command is killed at the timeout and rejects with TIMEOUT', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sllm-host-'))
  const pidFile = join(dir, 'pid')
  const started = Date.now()
  // sh starts fast and `exec sleep` keeps its pid, so the pid file names the process the timeout must kill.
  const err = await host
    .exec('sh', ['-c', `echo $$ > '${pidFile}'; exec sleep 30`], { timeoutMs: 1500 })
    .catch((e: unknown) => e)
  expect(isSharedLLMError(err, 'TIMEOUT')).toBe(true)
  expect(Date.now() - started).toBeLessThan(6000)
  const pid = Number(readFileSync(pidFile, 'utf8'))
  await expect.poll(() => isGone(pid), { timeout: 3000 }).toBe(true)
})

test('aborting the signal kills the command and rejects with CANCELLED', async () => {
  const c = new AbortController()
  setTimeout(() => c.abort(), 100)
  const err = await host
    .exec(node, ['-e', 'setInterval(() => {}, 1000)'], { signal: c.signal })
    .catch((e: unknown) => e)
  expect(isSharedLLMError(err, 'CANCELLED')).toBe(true)
})

test('reads files and directories, and reports OS memory', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sllm-host-'))
  writeFileSync(join(dir, 'a.txt'), 'hello\n')
  expect(await host.readFile(join(dir, 'a.txt'))).toBe('hello\n')
  expect(await host.readdir(dir)).toEqual(['a.txt'])
  await expect(host.readFile(join(dir, 'missing'))).rejects.toMatchObject({ code: 'ENOENT' })
  expect(host.totalMemBytes()).toBe(totalmem())
  expect(host.freeMemBytes()).toBeGreaterThan(0)
  expect(host.platform).toBe(process.platform)
})

// Runs the three client examples against a real host: the built `sharedllm` CLI with the fake Ollama.
// A device joins through the API, the admin approves it, the device claims its key, then each example runs.
import { type ChildProcess, execFile, spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { type FakeOllama, startFakeOllama } from '@sharedllm/core/testing'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'

const here = fileURLToPath(new URL('..', import.meta.url))
const cli = fileURLToPath(new URL('../../../packages/server-express/dist/cli.js', import.meta.url))
const ADMIN = 'sllm_admin_example-clients-secret-01'
const MODEL = 'qwen3:1.7b'

let fake: FakeOllama
let server: ChildProcess
let dataDir: string
let url: string
let key: string

beforeAll(async () => {
  fake = await startFakeOllama()
  dataDir = mkdtempSync(join(tmpdir(), 'clients-example-'))
  server = spawn(
    process.execPath,
    [cli, '--port', '0', '--host', '127.0.0.1', '--data-dir', dataDir, '--no-mdns', '--no-auto-start-ollama'],
    {
      env: { ...process.env, SHAREDLLM_ADMIN_TOKEN: ADMIN, SHAREDLLM_OLLAMA_HOST: fake.url },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  )
  const port = await new Promise<number>((resolve, reject) => {
    let out = ''
    const timer = setTimeout(() => reject(new Error(`host did not start:\n${out}`)), 30_000)
    const onData = (c: Buffer) => {
      out += c.toString()
      const m = /listening on port (\d+)/.exec(out)
      if (m) {
        clearTimeout(timer)
        resolve(Number(m[1]))
      }
    }
    server.stdout?.on('data', onData)
    server.stderr?.on('data', onData)
    server.on('exit', (code) => reject(new Error(`host exited (${code}):\n${out}`)))
  })
  url = `http://127.0.0.1:${port}`

  const joined = await (
    await fetch(`${url}/api/join`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'example laptop', platform: 'Linux' }),
    })
  ).json()
  const approve = await fetch(`${url}/api/devices/${joined.device_id}/approve`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${ADMIN}` },
    body: JSON.stringify({ role_id: 'role-user' }),
  })
  expect(approve.status).toBe(200)
  const claim = await (
    await fetch(`${url}/api/join/${joined.request_id}`, {
      headers: { 'x-claim-secret': joined.claim_secret },
    })
  ).json()
  key = claim.device_key
  expect(key).toMatch(/^sllm_/)
})

afterAll(async () => {
  if (server && server.exitCode === null) {
    const exited = new Promise((r) => server.on('exit', r))
    server.kill('SIGTERM')
    await exited
  }
  await fake?.stop()
  rmSync(dataDir, { recursive: true, force: true })
})

const run = (cmd: string, args: string[]) =>
  promisify(execFile)(cmd, args, {
    cwd: here,
    env: { ...process.env, SHAREDLLM_URL: url, SHAREDLLM_KEY: key, MODEL },
    timeout: 30_000,
  })

describe('client examples', () => {
  test('curl.sh lists models and streams a chat through both APIs', async () => {
    const { stdout } = await run('sh', ['curl.sh'])
    expect(stdout).toContain(`"name":"${MODEL}"`)
    expect(stdout).toMatch(/"done":true/)
    expect(stdout).toMatch(/"object":"chat\.completion"/)
  })

  test('the official ollama client lists models and streams a chat', async () => {
    const { stdout } = await run(process.execPath, ['ollama-client.mjs'])
    expect(stdout).toMatch(new RegExp(`models: .*${MODEL.replace('.', '\\.')}`))
    expect(stdout).toMatch(/answer: .+/)
    expect(stdout).toMatch(/tokens: \d+ in, \d+ out \(\d+ chunks\)/)
  })

  test('the official openai client lists models and streams a chat', async () => {
    const { stdout } = await run(process.execPath, ['openai-client.mjs'])
    expect(stdout).toMatch(new RegExp(`models: .*${MODEL.replace('.', '\\.')}`))
    expect(stdout).toMatch(/tokens: \d+ in, \d+ out \(\d+ chunks\)/)
  })

  test('the usage of all three shows up for the device', async () => {
    const me = await (await fetch(`${url}/api/me`, { headers: { authorization: `Bearer ${key}` } })).json()
    expect(me.usage.requests).toBeGreaterThanOrEqual(4)
    expect(me.usage.completion_tokens).toBeGreaterThan(0)
  })
})

import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { createServer } from 'node:net'
import { existsSync, readFileSync, statSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createHub } from '@sharedllm/core'
import { freeLoopbackPort } from '@sharedllm/core/testing'
import { afterEach, describe, expect, it } from 'vitest'
import { httpsRequest } from './https-helpers'

// The built bin, as `npx @sharedllm/server-express` runs it. Build first (`pnpm build`).
const cli = fileURLToPath(new URL('../dist/cli.js', import.meta.url))
const built = existsSync(cli)

let child: ChildProcess | undefined
let dir: string | undefined
afterEach(async () => {
  if (child && child.exitCode === null && child.signalCode === null) {
    const gone = new Promise((r) => child!.once('exit', r))
    child.kill('SIGTERM')
    const hard = setTimeout(() => child?.kill('SIGKILL'), 5000)
    await gone
    clearTimeout(hard)
  }
  child = undefined
  if (dir) await rm(dir, { recursive: true, force: true })
})

async function serve(
  args: string[],
  prepare?: (dataDir: string) => Promise<void>,
): Promise<{ out: () => string; port: number }> {
  dir = await mkdtemp(join(tmpdir(), 'sllm-https-cli-'))
  await prepare?.(join(dir, 'data'))
  const port = await freeLoopbackPort()
  const p = spawn(
    process.execPath,
    [
      cli,
      '--host',
      '127.0.0.1',
      '--port',
      String(port),
      '--data-dir',
      join(dir, 'data'),
      '--no-mdns',
      ...args,
    ],
    {
      env: {
        ...process.env,
        SHAREDLLM_LOG_LEVEL: 'warn',
        SHAREDLLM_OLLAMA_HOST: 'http://127.0.0.1:9',
        SHAREDLLM_HTTPS_PORT: '',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  )
  child = p
  let out = ''
  p.stdout.on('data', (d) => (out += d))
  p.stderr.on('data', (d) => (out += d))
  const end = Date.now() + 30_000
  while (!/admin login link/i.test(out)) {
    if (p.exitCode !== null) throw new Error(`the CLI exited ${p.exitCode}:\n${out}`)
    if (Date.now() > end) throw new Error(`the CLI did not start:\n${out}`)
    await new Promise((r) => setTimeout(r, 50))
  }
  return { out: () => out, port }
}

describe.skipIf(!built)('sharedllm CLI with HTTPS (built)', () => {
  it('--https-port serves HTTPS with a CA made on first start (key owner-only) and prints its fingerprint', async () => {
    const httpsPort = await freeLoopbackPort()
    const { out, port } = await serve(['--https-port', String(httpsPort), '--no-auto-start-ollama'])
    const tlsDir = join(dir!, 'data', 'tls')
    const ca = readFileSync(join(tlsDir, 'ca.crt'), 'utf8')
    expect(statSync(join(tlsDir, 'ca.key')).mode & 0o777).toBe(0o600)
    expect(statSync(tlsDir).mode & 0o777).toBe(0o700)
    expect(out()).toContain(`over HTTPS on port ${httpsPort}`)
    const fp = /fingerprint \(SHA-256\): (\S+)/.exec(out())?.[1]
    const health = await httpsRequest(`https://localhost:${httpsPort}/healthz`, { ca })
    expect(health.status).toBe(200)
    const info = await (await fetch(`http://127.0.0.1:${port}/api/tls`)).json()
    expect(info).toMatchObject({ https_port: httpsPort, http_port: port, ca_fingerprint: fp })
  })

  it('--no-https: no certificates are made and /api/tls says HTTPS is off', async () => {
    const { out, port } = await serve(['--no-https', '--no-auto-start-ollama'])
    expect(out()).not.toContain('over HTTPS')
    expect(existsSync(join(dir!, 'data', 'tls'))).toBe(false)
    const info = await (await fetch(`http://127.0.0.1:${port}/api/tls`)).json()
    expect(info).toEqual({ https_port: null, http_port: null, ca_fingerprint: null, https_urls: [] })
    expect((await fetch(`http://127.0.0.1:${port}/ca.crt`)).status).toBe(404)
  })

  it('the stored HTTPS port is taken: it serves HTTP only and says so', async () => {
    const httpsPort = await freeLoopbackPort()
    const squatter = createServer().listen(httpsPort, '127.0.0.1')
    await once(squatter, 'listening')
    try {
      const { out, port } = await serve(['--no-auto-start-ollama'], async (dataDir) => {
        // Chosen earlier by the owner, not on this command line: the CLI may fall back.
        const hub = createHub({ dataDir, providers: false, ollama: false, discovery: false })
        await hub.start()
        await hub.settings.set('https_port', httpsPort)
        await hub.stop()
      })
      expect(out()).toMatch(/the HTTPS port is in use; serving HTTP only/)
      expect(out()).not.toContain('over HTTPS')
      expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200)
      const info = await (await fetch(`http://127.0.0.1:${port}/api/tls`)).json()
      expect(info).toMatchObject({ https_port: null, https_urls: [] })
    } finally {
      squatter.close()
    }
  })

  it('an HTTPS port asked for on the command line and taken is an error, not a silent fallback', async () => {
    const httpsPort = await freeLoopbackPort()
    const squatter = createServer().listen(httpsPort, '127.0.0.1')
    await once(squatter, 'listening')
    try {
      await expect(serve(['--https-port', String(httpsPort), '--no-auto-start-ollama'])).rejects.toThrow(
        /the CLI exited [1-9][\s\S]*the port is already in use .*; pick another with --port or --https-port/,
      )
    } finally {
      squatter.close()
    }
  })

  it('a bad --https-port is a usage error', async () => {
    const p = spawn(process.execPath, [cli, '--https-port', '70000'], { stdio: ['ignore', 'pipe', 'pipe'] })
    let err = ''
    p.stderr.on('data', (d) => (err += d))
    const code = await new Promise((r) => p.once('exit', r))
    expect(code).toBe(2)
    expect(err).toContain('--https-port must be a whole number from 0 to 65535')
  })
})

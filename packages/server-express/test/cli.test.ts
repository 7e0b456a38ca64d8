import { type ChildProcess, spawn } from 'node:child_process'
import { existsSync, readdirSync, statSync } from 'node:fs'
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterEach, beforeAll, describe, expect, it } from 'vitest'

// These run the built bin, as `npx @sharedllm/server-express` would. Build first:
//   pnpm --filter @sharedllm/core build && pnpm --filter @sharedllm/server-express build
const cli = fileURLToPath(new URL('../dist/cli.js', import.meta.url))
const built = existsSync(cli)

let dir: string
let child: ChildProcess | undefined
afterEach(async () => {
  if (child && child.exitCode === null) child.kill('SIGKILL')
  child = undefined
  if (dir) await rm(dir, { recursive: true, force: true })
})
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sllm-cli-'))
})

function run(args: string[], env: Record<string, string> = {}) {
  const p = spawn(process.execPath, [cli, ...args], {
    env: { ...process.env, SHAREDLLM_LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let out = ''
  p.stdout.on('data', (d) => {
    out += d
  })
  p.stderr.on('data', (d) => {
    out += d
  })
  const exited = new Promise<number | null>((resolve) => p.on('exit', (code) => resolve(code)))
  return { p, output: () => out, exited }
}

async function waitFor(pred: () => boolean, ms = 15_000) {
  const end = Date.now() + ms
  while (!pred()) {
    if (Date.now() > end) throw new Error('timed out')
    await new Promise((r) => setTimeout(r, 50))
  }
}

describe.skipIf(!built)('sharedllm CLI (built)', () => {
  it('prints help', async () => {
    const r = run(['--help'])
    expect(await r.exited).toBe(0)
    expect(r.output()).toContain('sharedllm join <url> --name <name>')
    const bad = run(['--bogus'])
    expect(await bad.exited).toBe(2)
    // `pnpm start -- --version` passes the `--` on: it is skipped, not taken for the end of the options.
    const dashed = run(['--', '--version'])
    expect(await dashed.exited).toBe(0)
    expect(dashed.output().trim()).toMatch(/^\d+\.\d+\.\d+$/)
    const httpsOnly = run(['--https-only', '--no-https'])
    expect(await httpsOnly.exited).toBe(2)
    expect(httpsOnly.output()).toContain('--https-only needs HTTPS')
    const unknown = run(['serv'])
    expect(await unknown.exited).toBe(2)
    expect(unknown.output()).toContain(
      "unknown command 'serv'; the commands are serve, admin reset-token and join",
    )
  })

  it('starts, answers /healthz and /api/gpu, and exits cleanly on SIGTERM; reset-token rotates the secret', async () => {
    dir = await mkdtemp(join(tmpdir(), 'sllm-cli-'))
    const secret = 'cli-test-admin-secret-0123456789'
    const r = run(
      ['--port', '0', '--host', '127.0.0.1', '--data-dir', dir, '--no-mdns', '--no-auto-start-ollama'],
      {
        SHAREDLLM_ADMIN_TOKEN: secret,
        SHAREDLLM_OLLAMA_HOST: 'http://127.0.0.1:9',
      },
    )
    child = r.p
    await waitFor(() => /listening on port (\d+)/.test(r.output()))
    const port = Number(/listening on port (\d+)/.exec(r.output())![1])
    expect(r.output()).toMatch(/\/login\?token=[\w-]{20,}/)
    expect(r.output()).not.toContain(secret)
    const base = `http://127.0.0.1:${port}`
    expect((await fetch(`${base}/healthz`)).status).toBe(200)
    expect((await fetch(`${base}/api/gpu`)).status).toBe(401)
    const gpu = await fetch(`${base}/api/gpu`, { headers: { Authorization: `Bearer ${secret}` } })
    expect(gpu.status).toBe(200)
    expect(((await gpu.json()) as { devices: unknown[] }).devices.length).toBeGreaterThan(0)
    const t0 = Date.now()
    r.p.kill('SIGTERM')
    expect(await r.exited).toBe(0)
    expect(Date.now() - t0).toBeLessThan(30_000)

    const reset = run(['admin', 'reset-token', '--data-dir', dir])
    expect(await reset.exited).toBe(0)
    expect(reset.output()).toMatch(/sllm_admin_[\w-]{40,}/)
  })

  it('reads a config file, refuses a remote Ollama without --allow-remote-ollama, writes owner-only files', async () => {
    dir = await mkdtemp(join(tmpdir(), 'sllm-cli-'))
    await chmod(dir, 0o755)
    await writeFile(join(dir, 'config.json'), JSON.stringify({ ollama_host: 'http://10.9.9.9:11434' }))
    const args = [
      '--port',
      '0',
      '--host',
      '127.0.0.1',
      '--data-dir',
      dir,
      '--no-mdns',
      '--no-auto-start-ollama',
      '--no-https',
    ]
    const refused = run(args)
    expect(await refused.exited).toBe(1)
    expect(refused.output()).toContain('ollama_host: must be a loopback address')
    const missing = run([...args, '--config', join(dir, 'nope.json')])
    expect(await missing.exited).toBe(1)
    expect(missing.output()).toMatch(/config file .*nope\.json: cannot be read/)

    const r = run([...args, '--allow-remote-ollama'], {
      SHAREDLLM_ADMIN_TOKEN: 'cli-test-admin-secret-0123456789',
    })
    child = r.p
    await waitFor(() => /listening on port (\d+)/.test(r.output()))
    const walk = (d: string): string[] =>
      readdirSync(d, { withFileTypes: true }).flatMap((e) =>
        e.isDirectory() ? [join(d, e.name), ...walk(join(d, e.name))] : [join(d, e.name)],
      )
    const loose = [dir, ...walk(dir)]
      .filter((f) => !f.endsWith('config.json'))
      .filter((f) => (statSync(f).mode & 0o077) !== 0)
    expect(loose).toEqual([])
    expect(walk(dir).some((f) => f.endsWith('-wal'))).toBe(true)
    r.p.kill('SIGTERM')
    expect(await r.exited).toBe(0)
  })
})

// The release check: every publishable package packs, installs from its tarball into an empty project
// (as `npm install` would from the registry), and `npx sharedllm` from there starts a working host.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'

const root = fileURLToPath(new URL('..', import.meta.url))
const packagesDir = join(root, 'packages')
const publishable = readdirSync(packagesDir).filter((d) => {
  const pkg = JSON.parse(readFileSync(join(packagesDir, d, 'package.json'), 'utf8'))
  return !pkg.private
})

describe('package manifests', () => {
  test.each(publishable)('%s has what a published package needs', (dir) => {
    const pkg = JSON.parse(readFileSync(join(packagesDir, dir, 'package.json'), 'utf8'))
    expect(pkg.name).toBe(`@sharedllm/${dir}`)
    expect(pkg.version).toMatch(/^\d+\.\d+\.\d+/)
    expect(pkg.license).toBe('MIT')
    expect(pkg.description?.length).toBeGreaterThan(10)
    expect(pkg.repository?.url).toMatch(/^https:\/\//)
    expect(pkg.files).toContain('dist')
    expect(pkg.engines?.node).toBe('>=20.19')
    expect(pkg.type).toBe('module')
    for (const [entry, target] of Object.entries(pkg.exports as Record<string, Record<string, string>>)) {
      expect(target.types, `${dir} exports['${entry}'] has types`).toMatch(/\.d\.ts$/)
      expect(target.import, `${dir} exports['${entry}'] has import`).toBeDefined()
    }
    expect(readFileSync(join(packagesDir, dir, 'README.md'), 'utf8').length).toBeGreaterThan(200)
  })
})

describe('packed tarballs', () => {
  let work: string
  let server: ChildProcess | undefined

  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), 'sharedllm-release-'))
    const tarballs = join(work, 'tarballs')
    for (const dir of publishable) {
      execFileSync('npx', ['-y', 'pnpm@12.21.0', 'pack', '--pack-destination', tarballs], {
        cwd: join(packagesDir, dir),
        stdio: 'pipe',
      })
    }
    const app = join(work, 'app')
    execFileSync('mkdir', ['-p', app])
    writeFileSync(
      join(app, 'package.json'),
      JSON.stringify({ name: 'release-check', private: true, type: 'module' }),
    )
    const files = readdirSync(tarballs).map((f) => join(tarballs, f))
    execFileSync('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error', ...files], {
      cwd: app,
      stdio: 'pipe',
      env: { ...process.env, npm_config_nodedir: process.env.npm_config_nodedir ?? '/usr' },
    })
  })

  afterAll(() => {
    server?.kill('SIGKILL')
    rmSync(work, { recursive: true, force: true })
  })

  test('every publishable package was packed and installed', () => {
    expect(readdirSync(join(work, 'tarballs'))).toHaveLength(publishable.length)
    for (const dir of publishable) {
      const installed = JSON.parse(
        readFileSync(join(work, 'app', 'node_modules', '@sharedllm', dir, 'package.json'), 'utf8'),
      )
      // pnpm pack replaced the workspace: ranges with real versions.
      expect(JSON.stringify(installed)).not.toContain('workspace:')
    }
  })

  test('npx sharedllm --help', () => {
    const out = execFileSync('npx', ['sharedllm', '--help'], { cwd: join(work, 'app'), encoding: 'utf8' })
    expect(out).toMatch(/Usage:/)
    expect(out).toMatch(/--data-dir/)
  })

  test('the installed CLI starts a host: /healthz answers, the PWA loads, /api needs a credential', async () => {
    const dataDir = join(work, 'data')
    // The installed bin itself (what npx runs), so SIGTERM reaches the server and not an npx wrapper.
    server = spawn(
      join(work, 'app', 'node_modules', '.bin', 'sharedllm'),
      ['--port', '0', '--host', '127.0.0.1', '--data-dir', dataDir, '--no-mdns', '--no-auto-start-ollama'],
      { cwd: join(work, 'app'), stdio: ['ignore', 'pipe', 'pipe'] },
    )
    const port = await new Promise<number>((resolve, reject) => {
      let out = ''
      const timer = setTimeout(() => reject(new Error(`no listening line in 60 s:\n${out}`)), 60_000)
      server?.stdout?.on('data', (c: Buffer) => {
        out += c.toString()
        const m = /listening on port (\d+)/.exec(out)
        if (m) {
          clearTimeout(timer)
          resolve(Number(m[1]))
        }
      })
      server?.stderr?.on('data', (c: Buffer) => {
        out += c.toString()
      })
      server?.on('exit', (code) => reject(new Error(`server exited (${code}):\n${out}`)))
    })
    const base = `http://127.0.0.1:${port}`
    const health = await fetch(`${base}/healthz`)
    expect(health.status).toBe(200)
    expect(await health.json()).toMatchObject({ ok: true })
    const page = await fetch(`${base}/devices`)
    expect(page.status).toBe(200)
    expect(await page.text()).toMatch(/<div id="app"><\/div>|id="app"/)
    const manifest = await fetch(`${base}/manifest.webmanifest`)
    expect(manifest.status).toBe(200)
    expect((await fetch(`${base}/api/gpu`)).status).toBe(401)
    const exited = new Promise<number | null>((r) => server?.on('exit', (code) => r(code)))
    server.kill('SIGTERM')
    expect(await exited).toBe(0)
    server = undefined
  })
})

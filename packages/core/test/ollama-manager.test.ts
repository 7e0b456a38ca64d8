import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { delimiter, join } from 'node:path'
import { afterEach, describe, expect, test } from 'vitest'
import { EventBus } from '../src/events'
import type { Logger } from '../src/logger'
import { silentLogger } from '../src/logger'
import {
  groupMembers,
  isProcessGone,
  modelStore,
  OllamaClient,
  ownedOllamaEnv,
  OllamaManager,
  type OllamaManagerOptions,
  type OllamaManagerSettings,
} from '../src/ollama/index'
import type { OllamaStatus } from '../src/protocol/types'
import { fakeOllamaBin, fakeOllamaDir, freeLoopbackPort, startFakeOllama } from '../src/testing/fake-ollama'

const cleanups: Array<() => Promise<unknown> | unknown> = []
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()?.()
})

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

async function until(pred: () => boolean, what: string, timeoutMs = 8000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await sleep(10)
  }
}

function emptyDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'sllm-empty-'))
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

interface Seen extends OllamaStatus {
  at: number
}

async function setup(
  settings: Partial<OllamaManagerSettings> = {},
  opts: Partial<OllamaManagerOptions> = {},
) {
  const port = await freeLoopbackPort()
  const s: OllamaManagerSettings = {
    ollama_host: `http://127.0.0.1:${port}`,
    ollama_bin: null,
    auto_start_ollama: true,
    ...settings,
  }
  const bus = new EventBus()
  const seen: Seen[] = []
  bus.on('ollama_status', (st) => seen.push({ ...st, at: Date.now() }))
  const manager = new OllamaManager({
    bus,
    log: silentLogger,
    settings: () => s,
    healthIntervalMs: 100,
    healthTimeoutMs: 500,
    stopGraceMs: 1000,
    backoff: { initialMs: 100, maxMs: 400, resetAfterMs: 60_000, maxRestarts: 10, windowMs: 60_000 },
    env: { ...process.env, PATH: `${fakeOllamaDir}${delimiter}${process.env.PATH}` },
    ...opts,
  })
  cleanups.push(() => manager.stop())
  return { manager, seen, settings: s, bus }
}

function procEnv(pid: number): string {
  return readFileSync(`/proc/${pid}/environ`, 'utf8')
}

describe('OllamaManager: start', () => {
  test('auto-start finds `ollama` on PATH, runs `ollama serve` on loopback, owns it, and stop leaves no process', async () => {
    const lines: string[] = []
    const log: Logger = {
      debug: () => {},
      info: (o) => lines.push(JSON.stringify(o)),
      warn: (o) => lines.push(JSON.stringify(o)),
      error: () => {},
      child: () => log,
    }
    const { manager, seen, settings } = await setup({}, { log })
    await manager.start()
    const st = manager.status()
    expect(st).toMatchObject({ state: 'running', running: true, owned: true, version: '0.10.1', restarts: 0 })
    expect(st.host).toBe(settings.ollama_host)
    const pid = st.pid!
    expect(readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')).toEqual(
      expect.arrayContaining([join(fakeOllamaDir, 'ollama'), 'serve']),
    )
    expect(procEnv(pid)).toContain(`OLLAMA_HOST=127.0.0.1:${new URL(settings.ollama_host).port}\0`)
    // The child's output goes to the log.
    await until(() => lines.some((l) => l.includes('Listening on 127.0.0.1')), 'child output in the log')

    await manager.stop()
    expect(isProcessGone(pid)).toBe(true)
    expect(manager.status()).toMatchObject({ state: 'stopped', running: false, pid: null })
    // Every status change was emitted once, in order, and the last one is the current status.
    expect(seen.map((s) => s.state)).toEqual(['unreachable', 'starting', 'running', 'stopped'])
    expect(seen[1]).toMatchObject({ owned: true, pid })
    for (let i = 1; i < seen.length; i++) {
      const { at: _a, checked_at: _c, ...prev } = seen[i - 1]!
      const { at: _b, checked_at: _d, ...cur } = seen[i]!
      expect(cur).not.toEqual(prev)
    }
    const { at: _at, ...last } = seen.at(-1)!
    expect(last).toEqual(manager.status())
  })

  test('uses the ollama_bin setting when PATH has no ollama', async () => {
    const { manager } = await setup(
      { ollama_bin: fakeOllamaBin },
      {
        env: {
          ...process.env,
          PATH: `${emptyDir()}${delimiter}/usr/bin:/bin:${join(process.execPath, '..')}`,
        },
      },
    )
    await manager.start()
    expect(manager.status()).toMatchObject({ running: true, owned: true })
  })

  test('no ollama installed: start resolves and the status says so', async () => {
    const { manager, seen } = await setup({}, { env: { ...process.env, PATH: emptyDir() } })
    await manager.start()
    expect(manager.status()).toMatchObject({ state: 'unreachable', running: false, owned: false, pid: null })
    expect(manager.status().last_error).toMatch(/ollama is not installed/)
    expect(seen.at(-1)?.last_error).toMatch(/not installed/)
  })

  test('an ollama_bin that does not exist is named in the status', async () => {
    const { manager } = await setup({ ollama_bin: '/nonexistent/ollama' })
    await manager.start()
    expect(manager.status().last_error).toBe('ollama_bin /nonexistent/ollama is not an executable file')
  })

  test('auto_start_ollama off: nothing is spawned, the status says Ollama is unreachable', async () => {
    const { manager } = await setup({ auto_start_ollama: false })
    await manager.start()
    expect(manager.status()).toMatchObject({ state: 'unreachable', running: false, pid: null })
    expect(manager.status().last_error).toMatch(/connection refused/)
  })
})

describe('OllamaManager: attach', () => {
  test('an Ollama that already runs is attached, not owned, and stop() leaves it running', async () => {
    const fake = await startFakeOllama()
    cleanups.push(() => fake.stop())
    const { manager } = await setup({ ollama_host: fake.url, ollama_bin: fakeOllamaBin })
    await manager.start()
    expect(manager.status()).toMatchObject({
      state: 'running',
      running: true,
      owned: false,
      pid: null,
      version: '0.10.1',
    })
    await manager.stop()
    expect(isProcessGone(fake.pid)).toBe(false)
    expect(await new OllamaClient({ host: fake.url }).version()).toBe('0.10.1')
  })

  test('an attached Ollama that dies is reported, then our own is started (auto-start on)', async () => {
    const fake = await startFakeOllama()
    cleanups.push(() => fake.stop())
    const { manager, seen } = await setup({ ollama_host: fake.url })
    await manager.start()
    expect(manager.status().owned).toBe(false)
    await fake.stop()
    await until(() => manager.status().owned && manager.status().running, 'our own ollama to run')
    expect(seen.some((s) => s.state === 'unreachable' && !s.owned && s.last_error !== null)).toBe(true)
    expect(manager.status().pid).not.toBe(fake.pid)
    expect(manager.status().restarts).toBe(0)
  })

  test('an attached Ollama that dies with auto-start off stays reported as unreachable', async () => {
    const fake = await startFakeOllama()
    cleanups.push(() => fake.stop())
    const { manager } = await setup({ ollama_host: fake.url, auto_start_ollama: false })
    await manager.start()
    await fake.stop()
    await until(() => manager.status().state === 'unreachable', 'unreachable')
    await sleep(300)
    expect(manager.status()).toMatchObject({ running: false, owned: false, pid: null })
  })
})

describe('OllamaManager: ollama_host changed at runtime', () => {
  test('ours on the old address is stopped and a new one serves the new address', async () => {
    const { manager, settings } = await setup()
    await manager.start()
    const old = manager.status()
    expect(old).toMatchObject({ running: true, owned: true })
    const port = await freeLoopbackPort()
    settings.ollama_host = `http://127.0.0.1:${port}`
    await manager.reconfigure()
    expect(isProcessGone(old.pid!)).toBe(true)
    const now = manager.status()
    expect(now).toMatchObject({ host: settings.ollama_host, running: true, owned: true, restarts: 0 })
    expect(now.pid).not.toBe(old.pid)
    expect(procEnv(now.pid!)).toContain(`OLLAMA_HOST=127.0.0.1:${port}\0`)
    // The old child's exit was not taken for a crash: no restart comes after it.
    await sleep(400)
    expect(manager.status()).toMatchObject({ pid: now.pid, restarts: 0, state: 'running' })
  })

  test('moved to an Ollama that already runs: ours is stopped and that one is attached', async () => {
    const fake = await startFakeOllama()
    cleanups.push(() => fake.stop())
    const { manager, settings } = await setup()
    await manager.start()
    const ours = manager.status().pid!
    settings.ollama_host = fake.url
    await manager.reconfigure()
    expect(isProcessGone(ours)).toBe(true)
    expect(manager.status()).toMatchObject({
      host: fake.url,
      running: true,
      owned: false,
      pid: null,
      last_error: null,
    })
    await manager.stop()
    expect(isProcessGone(fake.pid)).toBe(false)
  })

  test('a binary fixed in the settings is used at once', async () => {
    const { manager, settings } = await setup({ ollama_bin: '/nonexistent/ollama' })
    await manager.start()
    expect(manager.status().running).toBe(false)
    expect(manager.status().last_error).toMatch(/not an executable file/)
    settings.ollama_bin = fakeOllamaBin
    await manager.reconfigure()
    expect(manager.status()).toMatchObject({ running: true, owned: true, gave_up: false })
  })

  test('a manager that gave up starts over when the address changes', async () => {
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      PATH: `${fakeOllamaDir}${delimiter}${process.env.PATH}`,
      FAKE_OLLAMA_MODE: 'crash-after:30',
    }
    const { manager, settings } = await setup(
      {},
      { backoff: { initialMs: 50, maxMs: 100, maxRestarts: 2, windowMs: 60_000 }, env },
    )
    await manager.start()
    await until(() => manager.status().gave_up, 'give-up', 15_000)
    delete env.FAKE_OLLAMA_MODE // the owner fixed what made it crash, and points at a new address
    settings.ollama_host = `http://127.0.0.1:${await freeLoopbackPort()}`
    await manager.reconfigure()
    expect(manager.status()).toMatchObject({ running: true, owned: true, gave_up: false, state: 'running' })
    // Restarts work again after the reset.
    const pid = manager.status().pid!
    process.kill(pid, 'SIGKILL')
    await until(() => manager.status().running && manager.status().pid !== pid, 'restart after give-up reset')
  })

  test('does nothing once stopped', async () => {
    const { manager } = await setup()
    await manager.start()
    await manager.stop()
    await manager.reconfigure()
    expect(manager.status()).toMatchObject({ state: 'stopped', pid: null })
  })
})

describe('OllamaManager: restarts', () => {
  /** Kills the owned child with SIGKILL and returns ms between the exit being seen and the respawn. */
  async function killAndMeasure(manager: OllamaManager, seen: Seen[]): Promise<number> {
    const pid = manager.status().pid!
    const from = seen.length
    process.kill(pid, 'SIGKILL')
    await until(() => manager.status().running && manager.status().pid !== pid, 'the restarted ollama')
    const after = seen.slice(from)
    const down = after.find((s) => s.state === 'restarting')!
    const up = after.find((s) => s.state === 'starting')!
    expect(down.last_error).toMatch(/signal SIGKILL/)
    return up.at - down.at
  }

  test('kill -9 of an owned Ollama restarts it with doubling backoff, capped', async () => {
    const { manager, seen } = await setup(
      {},
      { backoff: { initialMs: 100, maxMs: 200, resetAfterMs: 60_000 } },
    )
    await manager.start()
    const gaps: number[] = []
    for (let i = 0; i < 4; i++) gaps.push(await killAndMeasure(manager, seen))
    // 100, 200, 200 (cap), 200 (cap); uncapped they would be 400 and 800.
    expect(gaps[0]).toBeGreaterThanOrEqual(95)
    expect(gaps[1]).toBeGreaterThanOrEqual(195)
    expect(gaps[2]).toBeGreaterThanOrEqual(195)
    expect(gaps[2]).toBeLessThan(395)
    expect(gaps[3]).toBeGreaterThanOrEqual(195)
    expect(gaps[3]).toBeLessThan(600)
    expect(manager.status()).toMatchObject({ state: 'running', owned: true, restarts: 4, gave_up: false })
  })

  test('the backoff starts over after a healthy period', async () => {
    const { manager, seen } = await setup({}, { backoff: { initialMs: 150, maxMs: 5000, resetAfterMs: 250 } })
    await manager.start()
    const first = await killAndMeasure(manager, seen)
    const second = await killAndMeasure(manager, seen)
    expect(first).toBeGreaterThanOrEqual(145)
    expect(second).toBeGreaterThanOrEqual(295)
    await sleep(400) // healthy for longer than resetAfterMs, with health checks every 100 ms
    const third = await killAndMeasure(manager, seen)
    expect(third).toBeGreaterThanOrEqual(145)
    expect(third).toBeLessThan(295)
  })

  test('gives up after maxRestarts in the window and says so; no process is left', async () => {
    const { manager, seen } = await setup(
      {},
      {
        backoff: { initialMs: 50, maxMs: 100, maxRestarts: 3, windowMs: 60_000 },
        env: {
          ...process.env,
          PATH: `${fakeOllamaDir}${delimiter}${process.env.PATH}`,
          FAKE_OLLAMA_MODE: 'crash-after:30',
        },
      },
    )
    await manager.start()
    await until(() => manager.status().gave_up, 'give-up', 15_000)
    expect(manager.status()).toMatchObject({
      state: 'failed',
      running: false,
      gave_up: true,
      restarts: 3,
      pid: null,
    })
    expect(manager.status().last_error).toMatch(
      /^gave up after 3 restarts in 1 min; last error: ollama serve exited with code 2/,
    )
    const pids = [...new Set(seen.map((s) => s.pid).filter((p): p is number => p !== null))]
    expect(pids).toHaveLength(4) // the first start and 3 restarts
    for (const pid of pids) expect(isProcessGone(pid)).toBe(true)
    await sleep(400)
    expect(manager.status().restarts).toBe(3)
    expect(seen.filter((s) => s.state === 'starting')).toHaveLength(4)
  })

  test('an owned Ollama that stops answering is killed and restarted', async () => {
    const { manager } = await setup({}, { healthTimeoutMs: 150 })
    await manager.start()
    const pid = manager.status().pid!
    await fetch(`${manager.status().host}/__fake/mode`, { method: 'POST', body: '{"mode":"hang"}' })
    await until(() => manager.status().running && manager.status().pid !== pid, 'a fresh ollama')
    expect(isProcessGone(pid)).toBe(true)
    expect(manager.status().restarts).toBe(1)
    expect(manager.status().last_error).toMatch(/stopped answering/)
  })
})

describe('OllamaManager: stop', () => {
  test('an Ollama that ignores SIGTERM gets SIGKILL after the grace period', async () => {
    const { manager } = await setup(
      {},
      {
        stopGraceMs: 300,
        env: {
          ...process.env,
          PATH: `${fakeOllamaDir}${delimiter}${process.env.PATH}`,
          FAKE_OLLAMA_IGNORE_SIGTERM: '1',
        },
      },
    )
    await manager.start()
    const pid = manager.status().pid!
    const started = Date.now()
    await manager.stop()
    expect(Date.now() - started).toBeGreaterThanOrEqual(290)
    expect(isProcessGone(pid)).toBe(true)
  })

  test('no orphan when the process that owns the manager exits without calling stop()', async () => {
    const port = await freeLoopbackPort()
    const dir = emptyDir()
    const script = join(dir, 'owner.mts')
    const src = (p: string) => JSON.stringify(new URL(p, import.meta.url).pathname)
    writeFileSync(
      script,
      `import { OllamaManager } from ${src('../src/ollama/index.ts')}
import { EventBus } from ${src('../src/events.ts')}
const log = { debug() {}, info() {}, warn() {}, error() {}, child: () => log }
const m = new OllamaManager({
  bus: new EventBus(), log, healthIntervalMs: 100,
  settings: () => ({ ollama_host: 'http://127.0.0.1:${port}', ollama_bin: ${JSON.stringify(fakeOllamaBin)}, auto_start_ollama: true }),
})
await m.start()
console.log(JSON.stringify(m.status()))
process.exit(0)
`,
    )
    const tsx = new URL('../../../node_modules/tsx/dist/loader.mjs', import.meta.url).pathname
    const child = spawn(process.execPath, ['--import', tsx, script], { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    let err = ''
    child.stdout.on('data', (d) => {
      out += d
    })
    child.stderr.on('data', (d) => {
      err += d
    })
    const code = await new Promise((r) => child.on('exit', r))
    expect(err).toBe('')
    expect(code).toBe(0)
    const status = JSON.parse(out) as OllamaStatus
    expect(status).toMatchObject({ running: true, owned: true })
    await until(() => isProcessGone(status.pid!), 'the orphan to be gone', 2000)
  }, 30_000)
})

describe('OllamaManager: the Ollama it starts', () => {
  /**
   * A wrapper `ollama` that records its environment, starts a "runner" in its process group that ignores
   * SIGTERM (as a runner busy on the GPU may), waits a little ("GPU discovery"), then becomes the fake.
   */
  function wrapper(): { dir: string; envFile: string; runnerFile: string } {
    const dir = emptyDir()
    const envFile = join(dir, 'env')
    const runnerFile = join(dir, 'runner.pid')
    writeFileSync(
      join(dir, 'ollama'),
      `#!/bin/sh
env > ${JSON.stringify(envFile)}
sh -c 'trap "" TERM; echo $$ > ${JSON.stringify(runnerFile)}; while true; do sleep 1; done' &
sleep 0.3
exec ${JSON.stringify(fakeOllamaBin)} "$@"
`,
      { mode: 0o755 },
    )
    return { dir, envFile, runnerFile }
  }

  test('gets the default context, no cloud, the model store; stop leaves no runner of its group', async () => {
    const w = wrapper()
    const store = emptyDir()
    const { manager, seen } = await setup(
      { default_context_tokens: 8192, cloud_models_enabled: false, ollama_kv_cache_type: 'q8_0' },
      {
        stopGraceMs: 300,
        env: { ...process.env, PATH: `${w.dir}${delimiter}${process.env.PATH}`, OLLAMA_MODELS: store },
      },
    )
    await manager.start()
    expect(manager.status()).toMatchObject({ state: 'running', owned: true, models_dir: store, detail: null })
    // While it had not answered yet, the status said why it was taking time.
    expect(seen.some((s) => s.state === 'starting' && s.detail === 'starting (GPU discovery)')).toBe(true)
    const env = readFileSync(w.envFile, 'utf8').split('\n')
    expect(env).toContain('OLLAMA_CONTEXT_LENGTH=8192')
    expect(env).toContain('OLLAMA_NO_CLOUD=1')
    expect(env).toContain('OLLAMA_KV_CACHE_TYPE=q8_0')
    expect(env).toContain(`OLLAMA_MODELS=${store}`)
    const pid = manager.status().pid!
    await until(() => {
      try {
        return readFileSync(w.runnerFile, 'utf8').trim() !== ''
      } catch {
        return false
      }
    }, 'the runner')
    const runner = Number(readFileSync(w.runnerFile, 'utf8'))
    expect(isProcessGone(runner)).toBe(false)
    expect(groupMembers(pid)).toContain(runner)
    await manager.stop()
    // SIGTERM to the group, the wait, then SIGKILL of the group: the runner that ignored SIGTERM is gone too.
    expect(isProcessGone(pid)).toBe(true)
    expect(isProcessGone(runner)).toBe(true)
    expect(groupMembers(pid)).toEqual([])
  })

  test('cloud models on: no OLLAMA_NO_CLOUD', async () => {
    const w = wrapper()
    const { manager } = await setup(
      { cloud_models_enabled: true },
      { stopGraceMs: 300, env: { ...process.env, PATH: `${w.dir}${delimiter}${process.env.PATH}` } },
    )
    await manager.start()
    expect(readFileSync(w.envFile, 'utf8')).not.toMatch(/^OLLAMA_NO_CLOUD=/m)
  })

  test('the system service store is used when it exists and is readable', () => {
    const system = emptyDir()
    expect(modelStore({}, system)).toBe(system)
    expect(modelStore({}, join(system, 'absent'))).toBeNull()
    expect(modelStore({ OLLAMA_MODELS: '/data/models' }, system)).toBe('/data/models')
    expect(ownedOllamaEnv({ ollama_host: '', ollama_bin: null, auto_start_ollama: true }, null)).toEqual({
      OLLAMA_NO_CLOUD: '1',
    })
  })
})

describe('OllamaManager: the stand-in’s runners', () => {
  test('no runner survives a stop', async () => {
    const { manager } = await setup({}, { stopGraceMs: 2000 })
    await manager.start()
    expect(manager.status()).toMatchObject({ state: 'running', owned: true })
    const base = manager.client.host
    // Two models loaded: two runner processes (llm/server.go starts one per model).
    for (const model of ['qwen3:1.7b', 'gemma3:4b']) {
      const res = await fetch(`${base}/api/generate`, {
        method: 'POST',
        body: JSON.stringify({ model, keep_alive: -1 }),
      })
      expect(res.status).toBe(200)
      await res.arrayBuffer()
    }
    const runners = (await (await fetch(`${base}/__fake/runners`)).json()) as { pid: number }[]
    expect(runners).toHaveLength(2)
    for (const r of runners) expect(isProcessGone(r.pid)).toBe(false)
    const pid = manager.status().pid!
    await manager.stop()
    expect(isProcessGone(pid)).toBe(true)
    for (const r of runners) expect(isProcessGone(r.pid), `runner ${r.pid}`).toBe(true)
    expect(groupMembers(pid)).toEqual([])
  })
})

describe('OllamaManager: GPU discovery', () => {
  const env = (ms: number) => ({
    ...process.env,
    PATH: `${fakeOllamaDir}${delimiter}${process.env.PATH}`,
    FAKE_OLLAMA_DISCOVERY_MS: String(ms),
  })

  test('a start that takes a while is waited for, saying why, up to ollama_start_timeout_ms', async () => {
    const { manager, seen } = await setup({ ollama_start_timeout_ms: 10_000 }, { env: env(1200) })
    await manager.start()
    expect(manager.status()).toMatchObject({ state: 'running', owned: true })
    expect(seen.find((s) => s.state === 'starting')?.detail).toBe('starting (GPU discovery)')
  })

  test('past the deadline it is stopped and reported', async () => {
    const { manager } = await setup(
      { ollama_start_timeout_ms: 400 },
      {
        env: env(5000),
        backoff: { initialMs: 60_000, maxMs: 60_000, resetAfterMs: 60_000, maxRestarts: 1, windowMs: 60_000 },
      },
    )
    await manager.start()
    await until(() => /did not answer within 400 ms/.test(manager.status().last_error ?? ''), 'the deadline')
  })
})

describe('OllamaManager: settings an owned Ollama reads at start', () => {
  test('turning cloud models on restarts ours without OLLAMA_NO_CLOUD', async () => {
    const { manager, settings } = await setup({ cloud_models_enabled: false })
    await manager.start()
    const first = manager.status().pid!
    expect(procEnv(first)).toContain('OLLAMA_NO_CLOUD=1')
    settings.cloud_models_enabled = true
    await manager.reconfigure()
    await until(() => manager.status().state === 'running' && manager.status().pid !== first, 'the restart')
    expect(isProcessGone(first)).toBe(true)
    expect(procEnv(manager.status().pid!)).not.toContain('OLLAMA_NO_CLOUD=1')
    // Nothing that matters changed: no restart.
    const second = manager.status().pid
    await manager.reconfigure()
    expect(manager.status().pid).toBe(second)
  })
})

import { backoffDelay } from '../backoff'
import type { ChildProcess } from 'node:child_process'
import { createInterface } from 'node:readline'
import { errorMessage } from '../errors'
import type { EventBus } from '../events'
import type { Logger } from '../logger'
import type { OllamaStatus } from '../protocol/types'
import { OllamaClient } from './client'
import {
  findOllamaBinary,
  killGroup,
  loopbackListenAddress,
  modelStore,
  spawnOllama,
  terminate,
} from './process'

export interface OllamaBackoffOptions {
  /** First restart delay. @default 1000 */
  initialMs?: number
  /** Delays double up to this. @default 60000 */
  maxMs?: number
  /** After this long healthy, the next restart waits `initialMs` again. @default 300000 */
  resetAfterMs?: number
  /** Give up once this many restarts happened within `windowMs`. @default 10 */
  maxRestarts?: number
  /** @default 900000 */
  windowMs?: number
}

export interface OllamaManagerSettings {
  ollama_host: string
  ollama_bin: string | null
  auto_start_ollama: boolean
  /** Sent as OLLAMA_CONTEXT_LENGTH to an Ollama we start (the gateway sends num_ctx anyway). */
  default_context_tokens?: number
  /** Off: an Ollama we start gets OLLAMA_NO_CLOUD=1 (envconfig/config.go NoCloud). */
  cloud_models_enabled?: boolean
  /** OLLAMA_KV_CACHE_TYPE for an Ollama we start. */
  ollama_kv_cache_type?: string
  /** OLLAMA_NUM_PARALLEL for an Ollama we start (fit estimates and the scheduler assume it). */
  ollama_num_parallel?: number
  /** How long a started Ollama may take to answer (GPU discovery). */
  ollama_start_timeout_ms?: number
}

export interface OllamaManagerOptions {
  bus: EventBus
  log: Logger
  /** Read on every check, so setting changes apply without a restart of the manager. */
  settings: () => OllamaManagerSettings
  /** @default 5000 */
  healthIntervalMs?: number
  backoff?: OllamaBackoffOptions
  /** Time between SIGTERM and SIGKILL when stopping an owned Ollama. @default 5000 */
  stopGraceMs?: number
  /** Deadline of one health check. @default min(3000, healthIntervalMs) */
  healthTimeoutMs?: number
  /**
   * How long a freshly spawned Ollama has to answer before it counts as failed (GPU discovery can take
   * a minute or more). @default the setting ollama_start_timeout_ms, else 120000
   */
  startTimeoutMs?: number
  /** Consecutive failed checks after which a running owned Ollama that still runs is restarted. @default 2 */
  unhealthyChecks?: number
  /** Environment for the PATH lookup and the child. @default process.env */
  env?: NodeJS.ProcessEnv
}

type Probe = { ok: true; version: string } | { ok: false; error: string }

/**
 * The environment of an Ollama sharedLLM starts (envconfig/config.go): the default context (the
 * gateway sends num_ctx on every request too, this covers anything else), no cloud unless the owner
 * turned cloud models on, the KV cache type fit estimates assume, and the model store.
 */
export function ownedOllamaEnv(
  settings: OllamaManagerSettings,
  store: string | null,
): Record<string, string> {
  const env: Record<string, string> = {}
  if (settings.default_context_tokens) env.OLLAMA_CONTEXT_LENGTH = String(settings.default_context_tokens)
  if (!settings.cloud_models_enabled) env.OLLAMA_NO_CLOUD = '1'
  if (settings.ollama_kv_cache_type && settings.ollama_kv_cache_type !== 'f16') {
    env.OLLAMA_KV_CACHE_TYPE = settings.ollama_kv_cache_type
  }
  if (settings.ollama_num_parallel && settings.ollama_num_parallel > 1) {
    env.OLLAMA_NUM_PARALLEL = String(settings.ollama_num_parallel)
  }
  if (store) env.OLLAMA_MODELS = store
  return env
}

/**
 * The settings whose change needs an Ollama we started to be restarted (it reads them only at start):
 * cloud models on or off, the KV cache type, num_parallel. The default context is left out: the gateway
 * sends num_ctx with every request anyway.
 */
function restartEnvKey(s: OllamaManagerSettings): string {
  return JSON.stringify([
    !!s.cloud_models_enabled,
    s.ollama_kv_cache_type ?? 'f16',
    s.ollama_num_parallel ?? 1,
  ])
}

/**
 * Keeps an Ollama answering at `ollama_host`: attaches to one that already runs (monitored, never stopped),
 * or, with `auto_start_ollama`, spawns `ollama serve` on loopback and owns it: restarts it with exponential
 * backoff when it dies or stops answering, gives up after too many restarts, and never leaves it orphaned.
 * Every status change is emitted as `ollama_status`; failures are reported there, never thrown.
 */
export class OllamaManager {
  readonly client: OllamaClient
  private readonly o: OllamaManagerOptions
  private readonly log: Logger
  private readonly intervalMs: number
  private readonly backoff: Required<OllamaBackoffOptions>
  private readonly graceMs: number
  private readonly healthTimeoutMs: number
  private readonly startTimeoutMs: number | undefined
  private readonly unhealthyChecks: number
  private readonly env: NodeJS.ProcessEnv

  private current: OllamaStatus
  private active = false
  private child: ChildProcess | null = null
  /** The `ollama_host` the owned child was started for. */
  private childHost: string | null = null
  /** The settings-derived environment it was started with (cloud, KV cache type, num_parallel). */
  private childEnvKey: string | null = null
  private killReason: string | null = null
  private loopTimer: NodeJS.Timeout | null = null
  private restartTimer: NodeJS.Timeout | null = null
  private work: Promise<void> = Promise.resolve()
  private startPromise: Promise<void> | null = null
  private backoffStep = 0
  private restartTimes: number[] = []
  private healthySince: number | null = null
  private failures = 0
  private readonly killOnExit = () => {
    // The process is exiting and cannot wait: the whole group, so no runner keeps its GPU memory.
    const pid = this.child?.pid
    if (pid !== undefined) killGroup(pid)
  }

  constructor(o: OllamaManagerOptions) {
    this.o = o
    this.log = o.log.child({ component: 'ollama' })
    this.client = new OllamaClient({ host: () => o.settings().ollama_host })
    this.intervalMs = o.healthIntervalMs ?? 5000
    this.backoff = {
      initialMs: o.backoff?.initialMs ?? 1000,
      maxMs: o.backoff?.maxMs ?? 60_000,
      resetAfterMs: o.backoff?.resetAfterMs ?? 300_000,
      maxRestarts: o.backoff?.maxRestarts ?? 10,
      windowMs: o.backoff?.windowMs ?? 900_000,
    }
    this.graceMs = o.stopGraceMs ?? 5000
    this.healthTimeoutMs = o.healthTimeoutMs ?? Math.min(3000, this.intervalMs)
    this.startTimeoutMs = o.startTimeoutMs
    this.unhealthyChecks = o.unhealthyChecks ?? 2
    this.env = o.env ?? process.env
    this.current = {
      state: 'unknown',
      running: false,
      host: o.settings().ollama_host,
      version: null,
      owned: false,
      pid: null,
      restarts: 0,
      gave_up: false,
      last_error: null,
      checked_at: null,
    }
  }

  status(): OllamaStatus {
    return { ...this.current }
  }

  /** Attaches or spawns; resolves once the first check (and a spawn it needed) settled. Never throws. */
  start(): Promise<void> {
    if (this.startPromise) return this.startPromise
    this.active = true
    this.backoffStep = 0
    this.restartTimes = []
    this.failures = 0
    this.set({ restarts: 0, gave_up: false })
    process.on('exit', this.killOnExit)
    this.startPromise = this.serialize(() => this.tick()).then(() => this.scheduleCheck())
    return this.startPromise
  }

  /** Stops monitoring; an Ollama we own gets SIGTERM, then SIGKILL after the grace period. */
  async stop(): Promise<void> {
    this.active = false
    this.startPromise = null
    if (this.loopTimer) clearTimeout(this.loopTimer)
    if (this.restartTimer) clearTimeout(this.restartTimer)
    this.loopTimer = null
    this.restartTimer = null
    await this.work
    const child = this.child
    if (child) {
      this.log.info({ pid: child.pid }, 'stopping ollama')
      await terminate(child, this.graceMs)
      this.child = null
    }
    process.off('exit', this.killOnExit)
    this.set({ state: 'stopped', running: false, owned: false, pid: null })
  }

  /**
   * `ollama_host` (or how to start Ollama) changed: an Ollama we own that serves the old address is stopped,
   * give-up and backoff start over, and the new address is checked at once (attach, or spawn with
   * auto-start). Nothing to do when stopped. Never throws.
   */
  reconfigure(): Promise<void> {
    if (!this.active) return Promise.resolve()
    return this.serialize(async () => {
      const settings = this.o.settings()
      const host = settings.ollama_host
      const child = this.child
      const envChanged = child !== null && this.childEnvKey !== restartEnvKey(settings)
      if (child && (this.childHost !== host || envChanged)) {
        this.child = null // its exit is not a crash to restart from
        this.childHost = null
        this.log.info(
          { pid: child.pid, from: this.current.host, to: host },
          envChanged
            ? 'cloud models, KV cache type or num_parallel changed: restarting ours'
            : 'ollama_host changed: stopping ours',
        )
        await terminate(child, this.graceMs)
      }
      if (this.restartTimer) clearTimeout(this.restartTimer)
      this.restartTimer = null
      this.backoffStep = 0
      this.restartTimes = []
      this.failures = 0
      this.set({
        host,
        gave_up: false,
        last_error: null, // about the old address or setup
        ...(this.childAlive() ? {} : { state: 'unknown', running: false, owned: false, pid: null }),
      })
      await this.tick()
    }).then(() => this.scheduleCheck())
  }

  /** Runs state transitions one at a time; a failure is logged and reported, never thrown. */
  private serialize(fn: () => Promise<void>): Promise<void> {
    const next = this.work.then(fn).catch((err) => {
      this.log.error({ err }, 'ollama manager step failed')
      this.set({ last_error: errorMessage(err) })
    })
    this.work = next
    return next
  }

  private scheduleCheck(): void {
    if (!this.active || this.current.gave_up || this.loopTimer) return
    this.loopTimer = setTimeout(() => {
      this.loopTimer = null
      void this.serialize(() => this.tick()).then(() => this.scheduleCheck())
    }, this.intervalMs)
    this.loopTimer.unref()
  }

  private async probe(): Promise<Probe> {
    try {
      return { ok: true, version: await this.client.version({ timeoutMs: this.healthTimeoutMs }) }
    } catch (err) {
      return { ok: false, error: errorMessage(err) }
    }
  }

  private childAlive(): boolean {
    const c = this.child
    return c !== null && c.exitCode === null && c.signalCode === null
  }

  private async tick(): Promise<void> {
    if (!this.active || this.current.gave_up || this.restartTimer) return
    const settings = this.o.settings()
    const probe = await this.probe()
    const checked = { host: settings.ollama_host, checked_at: Date.now() }
    if (!this.active) return
    if (probe.ok) {
      this.onHealthy(probe.version, checked)
      return
    }
    this.failures += 1
    this.healthySince = null
    if (this.childAlive()) {
      if (this.current.state === 'running' && this.failures >= this.unhealthyChecks) {
        // A hung Ollama is killed; its exit handler schedules the restart.
        this.killReason = `ollama stopped answering (${probe.error})`
        this.set({ ...checked, last_error: this.killReason })
        await terminate(this.child!, this.graceMs)
      } else {
        this.set({ ...checked, last_error: probe.error })
      }
      return
    }
    if (this.current.running) this.log.warn({ error: probe.error }, 'ollama stopped answering')
    this.set({
      ...checked,
      state: 'unreachable',
      running: false,
      owned: false,
      pid: null,
      last_error: probe.error,
    })
    if (settings.auto_start_ollama && !this.child) await this.launch()
  }

  private onHealthy(version: string, checked: { host: string; checked_at: number }): void {
    const now = Date.now()
    this.failures = 0
    this.healthySince ??= now
    if (this.backoffStep > 0 && now - this.healthySince >= this.backoff.resetAfterMs) this.backoffStep = 0
    const owned = this.childAlive()
    if (!this.current.running)
      this.log.info({ version, owned }, owned ? 'ollama is running' : 'attached to ollama')
    this.set({
      ...checked,
      state: 'running',
      running: true,
      version,
      owned,
      pid: owned ? (this.child!.pid ?? null) : null,
      detail: null,
      // An attached Ollama's store is its own business; ours is the one we chose.
      ...(owned ? {} : { models_dir: null }),
    })
  }

  /** Spawns `ollama serve` on loopback and waits until it answers, dies, or runs out of time. */
  private async launch(): Promise<void> {
    const settings = this.o.settings()
    const listen = loopbackListenAddress(settings.ollama_host)
    if ('error' in listen) {
      this.set({ state: 'unreachable', running: false, last_error: listen.error })
      return
    }
    const bin = findOllamaBinary(settings.ollama_bin, this.env)
    if ('error' in bin) {
      this.set({ state: 'unreachable', running: false, last_error: bin.error })
      return
    }
    const store = modelStore(this.env)
    const extra = ownedOllamaEnv(settings, store)
    const child = spawnOllama(bin.path, listen.value, this.env, extra)
    this.child = child
    this.childHost = settings.ollama_host
    this.childEnvKey = restartEnvKey(settings)
    this.killReason = null
    this.set({
      state: 'starting',
      running: false,
      owned: true,
      pid: child.pid ?? null,
      detail: 'starting (GPU discovery)',
      models_dir: store,
    })
    this.log.info(
      { bin: bin.path, listen: listen.value, pid: child.pid, env: extra },
      'starting ollama serve',
    )
    this.pipeOutput(child)
    let ended = false
    const onEnd = (reason: string) => {
      if (ended) return
      ended = true
      void this.serialize(() => this.onChildExit(child, reason))
    }
    child.once('exit', (code, signal) =>
      onEnd(`ollama serve exited with ${code !== null ? `code ${code}` : `signal ${signal}`}`),
    )
    child.once('error', (err) => onEnd(`could not run ${bin.path}: ${err.message}`))

    const startTimeoutMs = this.startTimeoutMs ?? settings.ollama_start_timeout_ms ?? 120_000
    const deadline = Date.now() + startTimeoutMs
    const pollMs = Math.min(100, this.intervalMs)
    while (this.active && this.child === child && this.childAlive()) {
      const probe = await this.probe()
      if (probe.ok) {
        this.onHealthy(probe.version, { host: settings.ollama_host, checked_at: Date.now() })
        return
      }
      if (Date.now() >= deadline) {
        this.killReason = `ollama serve did not answer within ${startTimeoutMs} ms (${probe.error})`
        await terminate(child, this.graceMs)
        return
      }
      await new Promise((r) => setTimeout(r, pollMs))
    }
  }

  private pipeOutput(child: ChildProcess): void {
    const log = this.log.child({ pid: child.pid })
    for (const stream of [child.stdout, child.stderr]) {
      if (!stream) continue
      createInterface({ input: stream }).on('line', (line) => {
        if (/level=(ERROR|WARN)/.test(line)) log.warn({ ollama: line }, 'ollama output')
        else log.info({ ollama: line }, 'ollama output')
      })
    }
  }

  private async onChildExit(child: ChildProcess, reason: string): Promise<void> {
    if (child !== this.child) return
    this.child = null
    const why = this.killReason ?? reason
    this.killReason = null
    if (!this.active) return
    this.log.warn({ pid: child.pid, reason: why }, 'ollama exited')
    this.healthySince = null
    this.set({ state: 'restarting', running: false, pid: null, last_error: why, detail: null })
    // Another Ollama may have taken the address (ours lost the race for the port): attach to it instead.
    const probe = await this.probe()
    if (probe.ok) {
      this.onHealthy(probe.version, { host: this.o.settings().ollama_host, checked_at: Date.now() })
      return
    }
    this.scheduleRestart(why)
  }

  private scheduleRestart(why: string): void {
    const now = Date.now()
    this.restartTimes = this.restartTimes.filter((t) => now - t < this.backoff.windowMs)
    if (this.restartTimes.length >= this.backoff.maxRestarts) {
      const minutes = Math.round(this.backoff.windowMs / 60_000)
      const message = `gave up after ${this.restartTimes.length} restarts in ${minutes} min; last error: ${why}`
      this.log.error({ restarts: this.current.restarts }, message)
      this.set({
        state: 'failed',
        running: false,
        owned: false,
        pid: null,
        gave_up: true,
        last_error: message,
      })
      if (this.loopTimer) clearTimeout(this.loopTimer)
      this.loopTimer = null
      return
    }
    const delay = backoffDelay(this.backoffStep, this.backoff)
    this.backoffStep += 1
    this.log.warn({ delay_ms: delay }, 'restarting ollama after backoff')
    this.set({ state: 'restarting', running: false })
    this.restartTimer = setTimeout(() => {
      this.restartTimer = null
      void this.serialize(async () => {
        if (!this.active) return
        this.restartTimes.push(Date.now())
        this.set({ restarts: this.current.restarts + 1 })
        await this.launch()
      })
    }, delay)
    this.restartTimer.unref()
  }

  /** Updates the status and emits `ollama_status` when anything but `checked_at` changed. */
  private set(patch: Partial<OllamaStatus>): void {
    const next = { ...this.current, ...patch }
    const changed = (Object.keys(next) as (keyof OllamaStatus)[]).some(
      (k) => k !== 'checked_at' && next[k] !== this.current[k],
    )
    this.current = next
    if (changed) this.o.bus.emit('ollama_status', { ...next })
  }
}

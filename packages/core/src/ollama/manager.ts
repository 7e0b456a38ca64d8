import { backoffDelay } from '../backoff'
import type { ChildProcess } from 'node:child_process'
import { createInterface } from 'node:readline'
import { errorMessage } from '../errors'
import type { EventBus } from '../events'
import type { Logger } from '../logger'
import type { OllamaStatus } from '../protocol/types'
import { OllamaClient } from './client'
import { findOllamaBinary, loopbackListenAddress, spawnOllama, terminate } from './process'

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
  /** How long a freshly spawned Ollama has to answer before it counts as failed. @default 30000 */
  startTimeoutMs?: number
  /** Consecutive failed checks after which a running owned Ollama that still runs is restarted. @default 2 */
  unhealthyChecks?: number
  /** Environment for the PATH lookup and the child. @default process.env */
  env?: NodeJS.ProcessEnv
}

type Probe = { ok: true; version: string } | { ok: false; error: string }

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
  private readonly startTimeoutMs: number
  private readonly unhealthyChecks: number
  private readonly env: NodeJS.ProcessEnv

  private current: OllamaStatus
  private active = false
  private child: ChildProcess | null = null
  /** The `ollama_host` the owned child was started for. */
  private childHost: string | null = null
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
    const pid = this.child?.pid
    if (pid !== undefined) {
      try {
        process.kill(pid, 'SIGKILL')
      } catch {
        // already gone
      }
    }
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
    this.startTimeoutMs = o.startTimeoutMs ?? 30_000
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
      const host = this.o.settings().ollama_host
      const child = this.child
      if (child && this.childHost !== host) {
        this.child = null // its exit is not a crash to restart from
        this.childHost = null
        this.log.info(
          { pid: child.pid, from: this.current.host, to: host },
          'ollama_host changed: stopping ours',
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
    const child = spawnOllama(bin.path, listen.value, this.env)
    this.child = child
    this.childHost = settings.ollama_host
    this.killReason = null
    this.set({ state: 'starting', running: false, owned: true, pid: child.pid ?? null })
    this.log.info({ bin: bin.path, listen: listen.value, pid: child.pid }, 'starting ollama serve')
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

    const deadline = Date.now() + this.startTimeoutMs
    const pollMs = Math.min(100, this.intervalMs)
    while (this.active && this.child === child && this.childAlive()) {
      const probe = await this.probe()
      if (probe.ok) {
        this.onHealthy(probe.version, { host: settings.ollama_host, checked_at: Date.now() })
        return
      }
      if (Date.now() >= deadline) {
        this.killReason = `ollama serve did not answer within ${this.startTimeoutMs} ms (${probe.error})`
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
    this.set({ state: 'restarting', running: false, pid: null, last_error: why })
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

import { errorMessage, SharedLLMError } from '../errors'
import type { EventBus } from '../events'
import type { Logger } from '../logger'
import type { MemoryDeviceReading, MemoryStats, ProviderState } from '../protocol/types'
import { createRealHost } from './real-host'
import { computeTotals, MIB, primaryDevices } from './totals'
import type { MemoryProvider, ProviderHost } from './types'

export interface ProviderSetOptions {
  bus: EventBus
  log: Logger
  /** @default createRealHost() */
  host?: ProviderHost
  providers: MemoryProvider[]
  /** Time from the start of one sample to the start of the next. @default 3000 */
  intervalMs?: number
  /** Longest one provider's `isAvailable` or `snapshot` may take before it counts as hung. @default 2500 */
  timeoutMs?: number
  /**
   * Longest one provider's `isAvailable` may take at start (a vendor tool's first run initialises the
   * driver and can be slow). @default 10000
   */
  availabilityTimeoutMs?: number
  /** The `host_reserve_mb` setting, read at every sample. */
  hostReserveMb: () => number
  /** Sum of the devices' allocations in MiB, read at every sample. */
  allocatedMb: () => Promise<number>
  now?: () => number
}

interface Entry {
  provider: MemoryProvider
  available: boolean
  active: boolean
  lastError: string | null
  lastGood: MemoryDeviceReading[]
}

/**
 * The probe loop: keeps the available providers (after `supersedes` and priority), samples them every
 * `intervalMs` without ever overlapping itself, and emits `memory_stats` per sample. A provider that throws,
 * hangs past `timeoutMs` or returns invalid data yields a `provider_error` event and its last good readings
 * marked stale; the loop itself never throws.
 */
export class ProviderSet {
  private readonly host: ProviderHost
  private readonly intervalMs: number
  private readonly timeoutMs: number
  private readonly availabilityTimeoutMs: number
  private readonly now: () => number
  private entries: Entry[] = []
  private latestStats: MemoryStats | null = null
  private inFlight: Promise<MemoryStats> | null = null
  private timer: NodeJS.Timeout | null = null
  private running = false
  private startPromise: Promise<void> | null = null
  private lastAllocatedMb = 0

  constructor(private readonly o: ProviderSetOptions) {
    this.host = o.host ?? createRealHost()
    this.intervalMs = positive(o.intervalMs, 3000, 'intervalMs')
    this.timeoutMs = positive(o.timeoutMs, 2500, 'timeoutMs')
    this.availabilityTimeoutMs = positive(o.availabilityTimeoutMs, 10_000, 'availabilityTimeoutMs')
    this.now = o.now ?? Date.now
    this.entries = dedupeByName(o.providers, o.log).map((provider) => ({
      provider,
      available: false,
      active: false,
      lastError: null,
      lastGood: [],
    }))
  }

  /** Detects which providers are available, takes a first sample, then starts the loop. */
  start(): Promise<void> {
    this.startPromise ??= this.doStart()
    return this.startPromise
  }

  private async doStart(): Promise<void> {
    await Promise.all(
      this.entries.map(async (e) => {
        try {
          e.available = await this.withTimeout(
            e.provider.isAvailable(this.host),
            'isAvailable',
            this.availabilityTimeoutMs,
          )
        } catch (err) {
          e.available = false
          e.lastError = errorMessage(err)
          this.o.log.warn(
            { provider: e.provider.name, err: e.lastError },
            'memory provider availability check failed',
          )
        }
      }),
    )
    const superseded = new Set(
      this.entries.filter((e) => e.available).flatMap((e) => e.provider.supersedes ?? []),
    )
    for (const e of this.entries) e.active = e.available && !superseded.has(e.provider.name)
    this.o.log.info(
      { active: this.entries.filter((e) => e.active).map((e) => e.provider.name) },
      'memory providers started',
    )
    this.running = true
    await this.sample()
    this.schedule(this.intervalMs)
  }

  /** Stops the loop, waits for a sample in flight and closes the providers. */
  async stop(): Promise<void> {
    this.running = false
    if (this.timer) clearTimeout(this.timer)
    this.timer = null
    await this.startPromise?.catch(() => {})
    await this.inFlight?.catch(() => {})
    this.startPromise = null
    await Promise.all(
      this.entries.map(async (e) => {
        try {
          await e.provider.close?.()
        } catch (err) {
          this.o.log.warn(
            { provider: e.provider.name, err: errorMessage(err) },
            'memory provider close failed',
          )
        }
      }),
    )
  }

  /** One sample now; when one is already running (the loop's or another caller's), returns that one. */
  sample(): Promise<MemoryStats> {
    this.inFlight ??= this.doSample().finally(() => {
      this.inFlight = null
    })
    return this.inFlight
  }

  latest(): MemoryStats | null {
    return this.latestStats
  }

  states(): ProviderState[] {
    return this.entries.map((e) => ({
      name: e.provider.name,
      available: e.available,
      active: e.active,
      lastError: e.lastError,
    }))
  }

  /**
   * Usable MiB for device allocations: the primary devices' total (see `primaryDevices`) minus the current
   * host reserve, floored at 0. Undefined before the first sample and while no device has ever been read.
   */
  capacityMb(): number | undefined {
    const stats = this.latestStats
    if (!stats || stats.devices.length === 0) return undefined
    const total = primaryDevices(stats.devices).reduce((n, d) => n + d.totalBytes, 0)
    return Math.max(0, Math.floor(total / MIB) - this.reserveMb())
  }

  private schedule(delayMs: number): void {
    if (!this.running) return
    this.timer = setTimeout(() => {
      this.timer = null
      const started = this.now()
      void this.sample().finally(() => {
        this.schedule(Math.max(0, this.intervalMs - (this.now() - started)))
      })
    }, delayMs)
    this.timer.unref?.()
  }

  private async doSample(): Promise<MemoryStats> {
    const active = this.entries.filter((e) => e.active)
    await Promise.all(active.map((e) => this.sampleOne(e)))
    const devices = mergeDevices(active)
    const reserveBytes = this.reserveMb() * MIB
    let allocatedMb = this.lastAllocatedMb
    try {
      const n = await this.o.allocatedMb()
      if (Number.isFinite(n) && n >= 0) allocatedMb = this.lastAllocatedMb = n
    } catch (err) {
      this.o.log.warn({ err: errorMessage(err) }, 'could not read the allocated memory; using the last value')
    }
    const stats: MemoryStats = {
      at: this.now(),
      devices,
      providers: this.states(),
      totals: computeTotals(devices, reserveBytes, Math.round(allocatedMb * MIB)),
    }
    this.latestStats = stats
    this.o.bus.emit('memory_stats', stats)
    return stats
  }

  private async sampleOne(e: Entry): Promise<void> {
    const name = e.provider.name
    const controller = new AbortController()
    try {
      const devices = await this.withTimeout(
        e.provider.snapshot(this.host, controller.signal),
        'snapshot',
        this.timeoutMs,
        controller,
      )
      const at = this.now()
      e.lastGood = devices.map((d) => ({ ...d, provider: name, stale: false, sampledAt: at }))
      e.lastError = null
    } catch (err) {
      const message = errorMessage(err)
      e.lastError = message
      e.lastGood = e.lastGood.map((d) => ({ ...d, stale: true }))
      this.o.log.warn({ provider: name, err: message }, 'memory provider sample failed')
      this.o.bus.emit('provider_error', { provider: name, message, stale: e.lastGood.length > 0 })
    }
  }

  private withTimeout<T>(
    work: Promise<T>,
    what: string,
    ms: number,
    controller?: AbortController,
  ): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        controller?.abort()
        reject(new SharedLLMError('TIMEOUT', `${what} did not finish within ${ms} ms`))
      }, ms)
      work.then(
        (v) => {
          clearTimeout(timer)
          resolve(v)
        },
        (err) => {
          clearTimeout(timer)
          reject(err)
        },
      )
    })
  }

  private reserveMb(): number {
    try {
      const n = this.o.hostReserveMb()
      return Number.isFinite(n) && n > 0 ? n : 0
    } catch {
      return 0
    }
  }
}

function positive(v: number | undefined, fallback: number, field: string): number {
  if (v === undefined) return fallback
  if (!Number.isFinite(v) || v <= 0) {
    throw new SharedLLMError('VALIDATION', `ProviderSet ${field} must be a positive number of ms, got ${v}`, {
      details: { field },
    })
  }
  return v
}

/** Two providers with one name: the higher priority wins (a third-party `nvidia` may replace the built-in). */
function dedupeByName(providers: MemoryProvider[], log: Logger): MemoryProvider[] {
  const byName = new Map<string, MemoryProvider>()
  for (const p of providers) {
    const prev = byName.get(p.name)
    if (prev && prev.priority >= p.priority) {
      log.warn(
        { provider: p.name },
        'two memory providers share a name; keeping the one with higher priority',
      )
      continue
    }
    byName.set(p.name, p)
  }
  return [...byName.values()]
}

/** Devices ordered by provider priority; a device id reported twice is kept from the higher priority. */
function mergeDevices(entries: Entry[]): MemoryDeviceReading[] {
  const out: MemoryDeviceReading[] = []
  const seen = new Set<string>()
  for (const e of [...entries].sort((a, b) => b.provider.priority - a.provider.priority)) {
    for (const d of e.lastGood) {
      if (seen.has(d.id)) continue
      seen.add(d.id)
      out.push(d)
    }
  }
  return out
}

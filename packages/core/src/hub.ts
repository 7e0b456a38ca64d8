import { AccessService, type AccessOptions } from './access/access'
import { AdminAuth, type AdminAuthOptions } from './access/admin'
import { hostname } from 'node:os'
import { Discovery } from './discovery/discovery'
import { PeersService } from './discovery/peers'
import { PoolService, type PoolServiceOptions } from './pool/service'
import { primaryDevices } from './providers/totals'
import { SharedLLMError } from './errors'
import { OllamaManager, type OllamaManagerOptions } from './ollama/manager'
import { ModelManager } from './ollama/models'
import { BUILTIN_PROVIDER_PACKAGES, loadProvidersDetailed } from './providers/load'
import { ProviderSet } from './providers/set'
import { MIB } from './providers/totals'
import type { MemoryProvider, ProviderHost } from './providers/types'
import { getInstanceId } from './store/instance'
import { VERSION } from './version'
import { GatewayMetrics } from './gateway/metrics'
import { normaliseModelName } from './gateway/patterns'
import { GatewayPolicy, type ModelCatalog } from './gateway/policy'
import { EventBus } from './events'
import { systemClock, type Clock } from './fairshare/clock'
import { numParallelFromEnv, QueueService, traitsFromShow } from './fairshare/service'
import { UsageRecorder } from './usage/recorder'
import { UsageService } from './usage/service'
import { QuotaWatch } from './usage/watch'
import type { Knex } from 'knex'
import type { DomainContext } from './domain/context'
import { DevicesService } from './domain/devices'
import { RolesService } from './domain/roles'
import { SettingsService } from './domain/settings'
import { createLogger, type Logger } from './logger'
import type { EventMap, EventType } from './protocol/events'
import type { SettingsValues } from './protocol/settings'
import type { AuditEntry } from './protocol/types'
import { auditRepo } from './store/audit'
import { defaultDataDir, openStore, type Store } from './store/db'

export interface HubOptions {
  /** Where `sharedllm.db` lives. @default `$SHAREDLLM_DATA_DIR` or `~/.sharedllm` */
  dataDir?: string
  logger?: Logger
  /** Clock, for tests. @default Date.now */
  now?: () => number
  /**
   * Capacity for allocations in MiB when no memory providers are running (embedding, tests). When
   * providers run, their primary devices minus `host_reserve_mb` decide.
   */
  capacityMb?: () => number | undefined
  /** Free memory in MiB for "can it load now" when no memory providers are running (embedding, tests). */
  freeMb?: () => number | undefined
  /**
   * Setting values that win over the stored ones for this run (CLI flags, the config file) until the owner
   * sets that key; not persisted. The only way to set `ollama_bin` and `extra_providers`.
   */
  settings?: Partial<SettingsValues>
  /** `--allow-remote-ollama`: `ollama_host` may leave this machine. @default false (loopback only) */
  allowRemoteOllama?: boolean
  /** Limits on join requests, claims and pairing codes (defaults suit a household LAN). */
  access?: Omit<AccessOptions, 'trust'>
  /** Session lifetimes and the backoff on failed admin authentication. */
  adminAuth?: AdminAuthOptions
  /**
   * Memory providers. Default: the five built-in packages (where installed) plus the `extra_providers`
   * setting, resolved from `providerResolveFrom` and the working directory. `false`: no probe loop.
   */
  providers?: MemoryProvider[] | false
  /** Where provider package names are resolved from (file URLs or directories). */
  providerResolveFrom?: string[]
  /** How providers touch the machine. @default the real host (execa, fs, os) */
  providerHost?: ProviderHost
  /** Probe cadence; @default the `probe_interval_ms` setting (3000) */
  probeIntervalMs?: number
  /** Run the Ollama process manager (attach or spawn, watchdog) and the running-models poll. @default true */
  ollama?: boolean | Partial<Omit<OllamaManagerOptions, 'bus' | 'log' | 'settings'>>
  /** Advertise and browse over mDNS (still follows the `mdns_enabled` setting) and join peers. @default true */
  discovery?: boolean
  /** Extra mDNS TXT entries (the HTTPS port and CA fingerprint). */
  discoveryTxt?: () => Record<string, string>
  /**
   * Pooling with joined peers (status polls, routing, failover). `false`: none. An object tunes the poll
   * cadence and the breaker (tests). @default on
   */
  pool?:
    | boolean
    | Pick<
        PoolServiceOptions,
        | 'pollIntervalMs'
        | 'pollTimeoutMs'
        | 'missesToDown'
        | 'connectTimeoutMs'
        | 'breakerThreshold'
        | 'breakerOpenMs'
      >
}

export class Hub {
  readonly bus: EventBus
  readonly log: Logger
  readonly dataDir: string
  readonly settings: SettingsService
  readonly roles: RolesService
  readonly devices: DevicesService
  /** The owner's secret, sessions and one-time login links. */
  readonly admin: AdminAuth
  /** Device keys, join requests, pairing codes, bearer authentication. */
  readonly access: AccessService
  /** Gateway rules: model lists, fit, limits, usage. */
  readonly policy: GatewayPolicy
  readonly metrics: GatewayMetrics
  /** Ollama process manager: status, and the client the gateway forwards through. */
  readonly ollama: OllamaManager
  /** Models: list, running, pull with progress, delete. */
  readonly models: ModelManager
  /** The fair-share queue in front of Ollama (every inference request through the gateway waits here). */
  readonly queue: QueueService
  /** Usage written in batches off the request path (raw rows and hourly rollups). */
  readonly recorder: UsageRecorder
  /** Budgets, allowed hours and usage over time. */
  readonly usage: UsageService
  /** The 80 % / 100 % budget marks each finished request passes. */
  readonly quotaWatch: QuotaWatch
  /** Memory probe loop; undefined with `providers: false` or before start. */
  memory: ProviderSet | undefined
  /** mDNS advertise/browse; undefined with `discovery: false` or before start. */
  discovery: Discovery | undefined
  /** Other sharedLLM hosts found on the LAN, and the keys this host claimed from them. */
  peers: PeersService | undefined
  /** Pooling: peer status, routing to joined peers; undefined with `pool: false` or before start. */
  pool: PoolService | undefined
  /** This data dir's sharedLLM instance id (set at start). */
  instanceId: string | undefined
  /** The policy reads models through it; tests may replace it. */
  protected catalog: ModelCatalog | undefined
  private offOllamaSettings: (() => void) | undefined
  private store: Store | undefined
  private readonly ctx: DomainContext
  private startPromise: Promise<void> | undefined
  private stopped = false

  constructor(private readonly options: HubOptions = {}) {
    this.log = options.logger ?? createLogger()
    this.bus = new EventBus((err, type) => this.log.error({ err, event: type }, 'event listener threw'))
    this.dataDir = options.dataDir ?? defaultDataDir()
    const now = options.now ?? Date.now
    this.ctx = {
      db: () => this.db,
      bus: this.bus,
      log: this.log,
      now,
      capacityMb: () => this.capacityMb(),
    }
    this.settings = new SettingsService(this.ctx, options.settings, {
      allowRemoteOllama: options.allowRemoteOllama === true,
    })
    this.roles = new RolesService(this.ctx, this.settings)
    this.devices = new DevicesService(this.ctx, this.settings)
    this.admin = new AdminAuth(this.ctx, options.adminAuth)
    this.access = new AccessService(this.ctx, this.devices, this.admin, {
      ...options.access,
      trust: () => ({
        enabled: this.settings.get('trust_local_network'),
        roleId: this.settings.get('default_role'),
      }),
    })
    this.metrics = new GatewayMetrics()
    this.policy = new GatewayPolicy({
      ctx: this.ctx,
      settings: this.settings,
      metrics: this.metrics,
      catalog: () => this.catalog,
      freeMb: () => this.freeMb(),
      usage: () => this.usage,
      remoteEstimate: (model, ctx) => this.pool?.remoteEstimate(model, ctx),
    })
    const ollamaOpts = typeof options.ollama === 'object' ? options.ollama : {}
    this.ollama = new OllamaManager({
      ...ollamaOpts,
      bus: this.bus,
      log: this.log.child({ component: 'ollama' }),
      settings: () => ({
        ollama_host: this.settings.get('ollama_host'),
        ollama_bin: this.settings.get('ollama_bin'),
        auto_start_ollama: this.settings.get('auto_start_ollama'),
        default_context_tokens: this.settings.get('default_context_tokens'),
        cloud_models_enabled: this.settings.get('cloud_models_enabled'),
        ollama_kv_cache_type: this.settings.get('ollama_kv_cache_type'),
        ollama_num_parallel: this.settings.get('ollama_num_parallel'),
        ollama_start_timeout_ms: this.settings.get('ollama_start_timeout_ms'),
      }),
    })
    this.models = new ModelManager({
      client: this.ollama.client,
      bus: this.bus,
      log: this.log.child({ component: 'models' }),
      inUse: (name) => this.policy.modelInUse(name),
    })
    this.catalog = this.models
    const clock: Clock = { now, setTimer: systemClock.setTimer, clearTimer: systemClock.clearTimer }
    this.recorder = new UsageRecorder({
      db: () => this.db,
      clock,
      retention: () => ({
        rawDays: this.settings.get('usage_raw_retention_days'),
        rollupDays: this.settings.get('usage_rollup_retention_days'),
      }),
      onError: (message) => this.log.warn(message),
    })
    this.usage = new UsageService({ db: () => this.db, recorder: this.recorder, clock })
    this.quotaWatch = new QuotaWatch({
      usedSince: (deviceId, at) => this.usage.usedSince(deviceId, at),
      zone: () => this.usage.zone,
    })
    this.bus.on('device_removed', ({ device }) => this.quotaWatch.forget(device.id))
    const ollamaEnv = ollamaOpts.env ?? process.env
    this.queue = new QueueService({
      bus: this.bus,
      log: this.log.child({ component: 'queue' }),
      numParallel: () =>
        this.ollama.status().owned
          ? numParallelFromEnv(ollamaEnv.OLLAMA_NUM_PARALLEL)
          : this.settings.get('ollama_num_parallel'),
      modelSwitchWaitS: () => this.settings.get('model_switch_wait_s'),
      traits: async (model) => {
        const [shown, list] = await Promise.all([
          this.catalog?.show(model),
          this.catalog?.list().catch(() => []),
        ])
        const listed = list?.find((m) => normaliseModelName(m.name) === model)
        return traitsFromShow(shown, listed?.size)
      },
      freeMb: () => this.freeMb(),
    })
  }

  get db(): Knex {
    if (!this.store) throw new SharedLLMError('INTERNAL', 'the hub is not started; call hub.start() first')
    return this.store.knex
  }

  get started(): boolean {
    return this.store !== undefined
  }

  get dbFile(): string | undefined {
    return this.store?.file
  }

  /** Usable MiB for allocations, or undefined while unknown. */
  capacityMb(): number | undefined {
    return this.options.capacityMb?.() ?? this.memory?.capacityMb()
  }

  /** Total MiB of the primary memory devices as last sampled (else the capacity), or undefined. */
  totalMb(): number | undefined {
    const devices = this.memory?.latest()?.devices
    if (devices?.length) {
      return Math.floor(primaryDevices(devices).reduce((n, d) => n + d.totalBytes, 0) / MIB)
    }
    return this.capacityMb()
  }

  /** Free MiB of the primary memory devices as last sampled, or undefined while unknown. */
  freeMb(): number | undefined {
    const override = this.options.freeMb?.()
    if (override !== undefined) return override
    const free = this.memory?.latest()?.totals.freeBytes
    return free === undefined ? undefined : Math.floor(free / MIB)
  }

  /** The hub's clock (the `now` option), in UTC ms. */
  now(): number {
    return this.ctx.now()
  }

  on<K extends EventType>(type: K, listener: (payload: EventMap[K]) => void): () => void {
    return this.bus.on(type, listener)
  }

  start(): Promise<void> {
    if (this.stopped) {
      return Promise.reject(
        new SharedLLMError('INTERNAL', 'this hub was stopped; create a new one with createHub()'),
      )
    }
    this.startPromise ??= this.doStart().catch((err) => {
      this.startPromise = undefined
      throw err
    })
    return this.startPromise
  }

  private async doStart(): Promise<void> {
    this.store = await openStore(this.dataDir)
    try {
      await this.roles.seed()
      await this.settings.load()
      this.instanceId = await getInstanceId(this.db)
      await this.access.expirePending()
      this.recorder.start()
      await this.startServices()
    } catch (err) {
      await this.recorder.stop()
      await this.stopServices()
      await this.store?.close()
      this.store = undefined
      throw err
    }
    this.log.info({ db: this.store.file }, 'hub started')
  }

  private async startServices(): Promise<void> {
    const o = this.options
    if (o.providers !== false) {
      let providers = o.providers
      if (!providers) {
        const names = [...BUILTIN_PROVIDER_PACKAGES, ...this.settings.get('extra_providers')]
        const loaded = await loadProvidersDetailed(names, {
          resolveFrom: o.providerResolveFrom,
          log: this.log,
        })
        for (const b of loaded.broken)
          this.bus.emit('provider_error', { provider: b.name, message: b.error.message, stale: false })
        providers = loaded.providers
      }
      this.memory = new ProviderSet({
        bus: this.bus,
        log: this.log.child({ component: 'memory' }),
        host: o.providerHost,
        providers,
        intervalMs: o.probeIntervalMs ?? this.settings.get('probe_interval_ms'),
        hostReserveMb: () => this.settings.get('host_reserve_mb'),
        allocatedMb: () => this.devices.allocatedMb(),
      })
      await this.memory.start()
    }
    if (o.ollama !== false) {
      await this.ollama.start()
      this.models.start()
      // A new address (or way to start Ollama) takes effect now: ours on the old address is stopped.
      this.offOllamaSettings = this.bus.on('setting_changed', ({ key }) => {
        // …and an Ollama we started reads cloud, KV cache type and num_parallel only at its start.
        if (
          key === 'ollama_host' ||
          key === 'ollama_bin' ||
          key === 'auto_start_ollama' ||
          key === 'cloud_models_enabled' ||
          key === 'ollama_kv_cache_type' ||
          key === 'ollama_num_parallel'
        )
          void this.ollama.reconfigure()
      })
    }
    if (o.pool !== false) {
      this.pool = new PoolService({
        ...(typeof o.pool === 'object' ? o.pool : {}),
        db: () => this.db,
        bus: this.bus,
        log: this.log.child({ component: 'pool' }),
        settings: this.settings,
        policy: this.policy,
        catalog: () => this.catalog,
        instanceId: () => this.instanceId as string,
        selfName: () => hostname().slice(0, 63) || 'sharedllm',
        version: VERSION,
        freeMb: () => this.freeMb(),
        totalMb: () => this.totalMb(),
        ollamaRunning: () => this.ollama.status().running,
        queueDepth: () => this.queue.scheduler.depthByModel(),
        queueWaits: () => this.queue.scheduler.waitByModel(),
        queueWaitMs: (model) => this.queue.scheduler.expectedWaitMs(model),
        serviceMs: (model) => this.queue.scheduler.serviceTimeMs(model),
      })
      this.pool.start()
    }
    if (o.discovery !== false) {
      const selfName = () => hostname().slice(0, 63) || 'sharedllm'
      this.peers = new PeersService({
        db: () => this.db,
        bus: this.bus,
        log: this.log.child({ component: 'peers' }),
        selfName,
        instanceId: this.instanceId as string,
        settings: this.settings,
        dataDir: this.dataDir,
      })
      this.discovery = new Discovery({
        bus: this.bus,
        log: this.log.child({ component: 'discovery' }),
        db: () => this.db,
        devices: this.devices,
        settings: this.settings,
        instanceId: this.instanceId as string,
        version: VERSION,
        apiPort: () => this.settings.get('api_port'),
        txt: o.discoveryTxt,
        name: selfName,
      })
      await this.discovery.start()
      // Join requests still waiting from the last run are polled again.
      void this.peers.resume().catch((err) => this.log.warn({ err }, 'resuming peer joins failed'))
    }
  }

  private async stopServices(): Promise<void> {
    this.access.stop()
    this.offOllamaSettings?.()
    this.offOllamaSettings = undefined
    await this.discovery?.stop().catch((err) => this.log.warn({ err }, 'stopping discovery failed'))
    this.peers?.stop()
    this.pool?.stop()
    this.pool = undefined
    this.models.stop()
    await this.memory?.stop().catch((err) => this.log.warn({ err }, 'stopping the probe loop failed'))
    await this.ollama.stop().catch((err) => this.log.warn({ err }, 'stopping Ollama failed'))
    this.ollama.client.close()
    this.discovery = undefined
    this.peers = undefined
    this.memory = undefined
  }

  async stop(): Promise<void> {
    this.stopped = true
    if (this.startPromise) await this.startPromise.catch(() => {})
    this.startPromise = undefined
    this.queue.close()
    await this.stopServices()
    // What the recorder still holds is written before the store closes.
    if (this.store) await this.recorder.stop()
    const store = this.store
    this.store = undefined
    this.bus.clear()
    await store?.close()
  }

  auditLog(opts: { limit?: number; beforeId?: number; target?: string } = {}): Promise<AuditEntry[]> {
    return auditRepo.list(this.db, opts)
  }
}

export function createHub(options: HubOptions = {}): Hub {
  return new Hub(options)
}

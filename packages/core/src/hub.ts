import { AccessService } from './access/access'
import { AdminAuth } from './access/admin'
import { SharedLLMError } from './errors'
import { GatewayMetrics } from './gateway/metrics'
import { GatewayPolicy, type ModelCatalog } from './gateway/policy'
import { EventBus } from './events'
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
  /** Setting values that win over the stored ones for this run (CLI flags); not persisted. */
  settings?: Partial<SettingsValues>
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
  /** Set by the Ollama wiring; the policy reads models through it. */
  protected catalog: ModelCatalog | undefined
  private store: Store | undefined
  private readonly ctx: DomainContext
  private startPromise: Promise<void> | undefined

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
    this.settings = new SettingsService(this.ctx, options.settings)
    this.roles = new RolesService(this.ctx, this.settings)
    this.devices = new DevicesService(this.ctx, this.settings)
    this.admin = new AdminAuth(this.ctx)
    this.access = new AccessService(this.ctx, this.devices, this.admin)
    this.metrics = new GatewayMetrics()
    this.policy = new GatewayPolicy({
      ctx: this.ctx,
      settings: this.settings,
      metrics: this.metrics,
      catalog: () => this.catalog,
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
    return this.options.capacityMb?.()
  }

  on<K extends EventType>(type: K, listener: (payload: EventMap[K]) => void): () => void {
    return this.bus.on(type, listener)
  }

  start(): Promise<void> {
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
    } catch (err) {
      await this.store.close()
      this.store = undefined
      throw err
    }
    this.log.info({ db: this.store.file }, 'hub started')
  }

  async stop(): Promise<void> {
    if (this.startPromise) await this.startPromise.catch(() => {})
    this.startPromise = undefined
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

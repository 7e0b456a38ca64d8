import { RateLimiter } from '../access/rate-limit'
import type { Principal } from '../access/access'
import type { DomainContext } from '../domain/context'
import type { SettingsService } from '../domain/settings'
import { SharedLLMError } from '../errors'
import type { MeModel, MeResponse, ModelView, UsageResponse } from '../protocol/api'
import type { FitVerdict, LoadVerdict, ModelInfo, Role, RunningModel, UsageRecord } from '../protocol/types'
import { usageRepo } from '../store/access'
import { rolesRepo } from '../store/roles'
import { estimateFit, type FitEstimate, kvShapeFromModelInfo, type KvShape, MiB, toMiB } from './fit'
import { clampKeepAlive } from './keep-alive'
import type { GatewayMetrics } from './metrics'
import { modelAllowed, normaliseModelName } from './patterns'

/** What the policy needs to know about models; the Ollama model manager provides it. */
export interface ModelCatalog {
  list(): Promise<ModelInfo[]>
  running(): Promise<RunningModel[]>
  show(name: string): Promise<{ model_info?: Record<string, unknown> | null }>
}

export interface AdmitRequest {
  /** e.g. `ollama:/api/chat`, `openai:/v1/chat/completions` */
  endpoint: string
  model?: string
  numCtx?: unknown
  keepAlive?: unknown
  pull?: boolean
}

export interface Admission {
  deviceId: string | null
  model: string | null
  /** keep_alive to forward (undefined: leave the request's own). */
  keepAlive: number | string | undefined
  /** num_ctx to forward (undefined: leave the request's own). */
  numCtx: number | undefined
  /** Frees the concurrency slot; safe to call more than once. */
  release(): void
}

export interface GatewayPolicyOptions {
  ctx: DomainContext
  settings: SettingsService
  metrics: GatewayMetrics
  catalog: () => ModelCatalog | undefined
  /** The host's free memory in MiB (primary devices, last sample), for "can it load now"; undefined: unknown. */
  freeMb?: () => number | undefined
  /** How long model lists and running models are cached on the hot path. @default 5000 */
  cacheMs?: number
}

/**
 * Who may call what through the gateway: the role's model list, the device's memory slice (fit estimate),
 * keep_alive and context clamps, requests per minute and concurrent streams. Checks run before Ollama is
 * touched; rejections are SharedLLMErrors (403 / 429) with messages that say what to do.
 */
export class GatewayPolicy {
  private readonly rate: RateLimiter
  private readonly inFlight = new Map<string, number>()
  private readonly modelsInFlight = new Map<string, number>()
  private tags: { at: number; models: ModelInfo[] } | undefined
  private ps: { at: number; models: RunningModel[] } | undefined
  private readonly shapes = new Map<string, KvShape | null>()
  private readonly cacheMs: number

  constructor(private readonly o: GatewayPolicyOptions) {
    this.rate = new RateLimiter(1, 60_000, o.ctx.now)
    this.cacheMs = o.cacheMs ?? 5000
    // A pull or delete changes the model list: forget it.
    for (const t of ['model_pulled', 'model_deleted'] as const) o.ctx.bus.on(t, () => this.invalidate())
    o.ctx.bus.on('models_running', ({ models }) => {
      this.ps = { at: this.o.ctx.now(), models }
    })
  }

  invalidate(): void {
    this.tags = undefined
    this.ps = undefined
  }

  activeStreams(deviceId: string): number {
    return this.inFlight.get(deviceId) ?? 0
  }

  /** Whether an admitted request is using `model` right now (the delete guard asks). */
  modelInUse(model: string): boolean {
    return (this.modelsInFlight.get(normaliseModelName(model)) ?? 0) > 0
  }

  private track(model: string | undefined): () => void {
    if (!model) return () => {}
    const key = normaliseModelName(model)
    this.modelsInFlight.set(key, (this.modelsInFlight.get(key) ?? 0) + 1)
    return () => {
      const n = (this.modelsInFlight.get(key) ?? 1) - 1
      if (n <= 0) this.modelsInFlight.delete(key)
      else this.modelsInFlight.set(key, n)
    }
  }

  private reject(reason: string, err: SharedLLMError): never {
    this.o.metrics.rejections.add({ reason })
    throw err
  }

  async admit(principal: Principal, req: AdmitRequest): Promise<Admission> {
    if (principal.kind === 'admin') {
      this.o.metrics.active.add({ device: 'admin' }, 1)
      const untrack = this.track(req.pull ? undefined : req.model)
      let released = false
      return {
        deviceId: null,
        model: req.model ?? null,
        keepAlive: undefined,
        numCtx: undefined,
        release: () => {
          if (released) return
          released = true
          untrack()
          this.o.metrics.active.add({ device: 'admin' }, -1)
        },
      }
    }
    const { device, role } = principal
    if (role.requests_per_minute !== null) {
      const retry = this.rate.hit(device.id, role.requests_per_minute)
      if (retry > 0) {
        this.reject(
          'rate_limit',
          new SharedLLMError(
            'RATE_LIMITED',
            `role '${role.name}' allows ${role.requests_per_minute} requests per minute; try again in ${retry} s`,
            { details: { retry_after: retry } },
          ),
        )
      }
    }
    const active = this.activeStreams(device.id)
    if (active >= role.max_concurrent) {
      this.reject(
        'concurrency',
        new SharedLLMError(
          'RATE_LIMITED',
          `role '${role.name}' allows ${role.max_concurrent} request${role.max_concurrent === 1 ? '' : 's'} at a time and ${active} ${active === 1 ? 'is' : 'are'} running; wait for ${active === 1 ? 'it' : 'one'} to finish`,
          { details: { retry_after: 1 } },
        ),
      )
    }
    if (req.pull && !role.can_pull) {
      this.reject(
        'pull_forbidden',
        new SharedLLMError(
          'FORBIDDEN',
          `role '${role.name}' cannot pull models; ask the host to change your role`,
        ),
      )
    }
    let numCtx: number | undefined
    if (req.numCtx !== undefined && req.numCtx !== null) {
      const n = Number(req.numCtx)
      if (!Number.isInteger(n) || n < 1 || n > 10_000_000) {
        this.reject(
          'bad_request',
          new SharedLLMError('VALIDATION', 'options.num_ctx: must be a whole number of tokens', {
            details: { field: 'options.num_ctx' },
          }),
        )
      }
      numCtx =
        role.max_context_tokens !== null && n > role.max_context_tokens ? role.max_context_tokens : undefined
    }
    if (req.model !== undefined && !req.pull) {
      if (!modelAllowed(role.allowed_models, req.model)) {
        this.reject(
          'model_not_allowed',
          new SharedLLMError(
            'FORBIDDEN',
            `role '${role.name}' may not use model '${req.model}'; allowed: ${role.allowed_models.join(', ')}`,
          ),
        )
      }
      const ctxTokens = this.contextFor(role, numCtx ?? (req.numCtx as number | undefined))
      const fit = await this.estimate(req.model, ctxTokens)
      const allocation = device.allocation_mb * MiB
      if (fit && fit.totalBytes > allocation) {
        this.reject(
          'does_not_fit',
          new SharedLLMError(
            'FORBIDDEN',
            `model '${req.model}' needs about ${toMiB(fit.totalBytes)} MiB${fit.source === 'estimate' ? ` at ${fit.contextTokens} tokens of context` : ' (as loaded)'} but device '${device.name}' has ${device.allocation_mb} MiB; ask the host for a larger allocation or use a smaller model`,
            { details: { required_mb: toMiB(fit.totalBytes), allocation_mb: device.allocation_mb } },
          ),
        )
      }
    }
    this.inFlight.set(device.id, active + 1)
    this.o.metrics.active.add({ device: device.id }, 1)
    const untrack = this.track(req.pull ? undefined : req.model)
    let released = false
    return {
      deviceId: device.id,
      model: req.model ?? null,
      keepAlive: clampKeepAlive(req.keepAlive, role.max_keep_alive_s),
      numCtx,
      release: () => {
        if (released) return
        released = true
        untrack()
        const n = (this.inFlight.get(device.id) ?? 1) - 1
        if (n <= 0) this.inFlight.delete(device.id)
        else this.inFlight.set(device.id, n)
        this.o.metrics.active.add({ device: device.id }, -1)
      },
    }
  }

  /** The context a fit estimate assumes: the request's, else the default setting, clamped to the role. */
  contextFor(role: Role, requested?: number): number {
    const base =
      requested && Number.isInteger(requested) && requested > 0
        ? requested
        : this.o.settings.get('default_context_tokens')
    return role.max_context_tokens !== null ? Math.min(base, role.max_context_tokens) : base
  }

  private async models(): Promise<ModelInfo[]> {
    const catalog = this.o.catalog()
    if (!catalog) return []
    if (this.tags && this.o.ctx.now() - this.tags.at < this.cacheMs) return this.tags.models
    const models = await catalog.list()
    this.tags = { at: this.o.ctx.now(), models }
    return models
  }

  /** Ollama's running models, cached for `cacheMs` on the hot path; `fresh` reads them now (the views). */
  private async running(fresh = false): Promise<RunningModel[]> {
    const catalog = this.o.catalog()
    if (!catalog) return []
    if (!fresh && this.ps && this.o.ctx.now() - this.ps.at < this.cacheMs) return this.ps.models
    const models = await catalog.running().catch(() => [] as RunningModel[])
    this.ps = { at: this.o.ctx.now(), models }
    return models
  }

  private async shape(model: ModelInfo): Promise<KvShape | undefined> {
    const key = model.digest || model.name
    if (this.shapes.has(key)) return this.shapes.get(key) ?? undefined
    const catalog = this.o.catalog()
    if (!catalog) return undefined
    const shown = await catalog.show(model.name).catch(() => undefined)
    const shape = kvShapeFromModelInfo(shown?.model_info ?? undefined) ?? null
    if (shown) {
      if (this.shapes.size > 500) this.shapes.clear()
      this.shapes.set(key, shape)
    }
    return shape ?? undefined
  }

  /**
   * Memory the model needs at `contextTokens`: the real size from Ollama's running list when it is loaded,
   * else weights + KV cache + overhead. Undefined when the model is unknown (Ollama then answers 404 itself).
   */
  async estimate(name: string, contextTokens: number): Promise<FitEstimate | undefined> {
    const wanted = normaliseModelName(name)
    let models: ModelInfo[]
    try {
      models = await this.models()
    } catch {
      return undefined // Ollama down: the forward itself will answer 502/503
    }
    const loaded = (await this.running()).find((m) => normaliseModelName(m.name) === wanted)
    if (loaded && loaded.size > 0) {
      return {
        weightsBytes: loaded.size,
        kvBytes: null,
        overheadBytes: 0,
        totalBytes: loaded.size,
        contextTokens,
        source: 'loaded',
      }
    }
    const model = models.find((m) => normaliseModelName(m.name) === wanted)
    if (!model) return undefined
    return estimateFit(model.size, await this.shape(model), contextTokens)
  }

  private verdict(fit: FitEstimate | undefined, allocationMb: number): FitVerdict {
    if (!fit) return 'unknown'
    return fit.totalBytes <= allocationMb * MiB ? 'fits' : 'exceeds_allocation'
  }

  /**
   * Can `name` load now: compared with the host's free memory, then with what Ollama would free by
   * unloading the loaded models that no request through the gateway is using (it does so on its own).
   */
  private async loadVerdict(name: string, fit: FitEstimate | undefined): Promise<LoadVerdict> {
    const running = await this.running()
    const wanted = normaliseModelName(name)
    if (running.some((m) => normaliseModelName(m.name) === wanted)) return 'loaded'
    const freeMb = this.o.freeMb?.()
    if (!fit || freeMb === undefined) return 'unknown'
    const free = freeMb * MiB
    if (fit.totalBytes <= free) return 'free'
    let idle = 0
    for (const m of running) {
      if (this.modelsInFlight.has(normaliseModelName(m.name))) continue
      // Held in GPU memory when the GPU is in use; in RAM (size) when Ollama runs on the CPU or unified memory.
      idle += m.size_vram > 0 ? m.size_vram : m.size
    }
    return fit.totalBytes <= free + idle ? 'unloads_idle' : 'busy'
  }

  /** GET /api/models: every model with a verdict for each role's maximum. */
  async modelViews(): Promise<ModelView[]> {
    const [models, running, roles] = await Promise.all([
      this.models(),
      this.running(true),
      rolesRepo.list(this.o.ctx.db()),
    ])
    const loaded = new Set(running.map((m) => normaliseModelName(m.name)))
    return Promise.all(
      models.map(async (m) => {
        const fits = await Promise.all(
          roles.map(async (role) => {
            const fit = await this.estimate(m.name, this.contextFor(role))
            return {
              role_id: role.id,
              verdict: modelAllowed(role.allowed_models, m.name)
                ? this.verdict(fit, role.max_memory_mb)
                : ('not_allowed' as FitVerdict),
              required_mb: fit ? toMiB(fit.totalBytes) : null,
            }
          }),
        )
        const load = await this.loadVerdict(
          m.name,
          await this.estimate(m.name, this.o.settings.get('default_context_tokens')),
        )
        return { ...m, fits, loaded: loaded.has(normaliseModelName(m.name)), load }
      }),
    )
  }

  /** The models a device may use (its role's list), each with a verdict against its allocation. */
  async modelsFor(principal: Principal): Promise<MeModel[]> {
    const models = await this.models().catch(() => [] as ModelInfo[])
    if (principal.kind === 'admin') {
      // No slice to check and no estimate made (required_mb null): only whether it is loaded is known.
      return Promise.all(
        models.map(async (m) => ({
          name: m.name,
          size: m.size,
          verdict: 'fits' as FitVerdict,
          required_mb: null,
          load: await this.loadVerdict(m.name, undefined),
        })),
      )
    }
    const { role, device } = principal
    const allowed = models.filter((m) => modelAllowed(role.allowed_models, m.name))
    return Promise.all(
      allowed.map(async (m) => {
        const fit = await this.estimate(m.name, this.contextFor(role))
        return {
          name: m.name,
          size: m.size,
          verdict: this.verdict(fit, device.allocation_mb),
          required_mb: fit ? toMiB(fit.totalBytes) : null,
          load: await this.loadVerdict(m.name, fit),
        }
      }),
    )
  }

  /** GET /api/me */
  async me(principal: Principal): Promise<MeResponse> {
    if (principal.kind !== 'device') {
      throw new SharedLLMError('BAD_REQUEST', '/api/me is for devices; the admin has no device record')
    }
    const db = this.o.ctx.db()
    // What is loaded right now, for the load verdicts (the gateway's listings keep the cached list).
    await this.running(true)
    return {
      device: principal.device,
      role: principal.role,
      usage: await usageRepo.totals(db, principal.device.id),
      models: await this.modelsFor(principal),
    }
  }

  /** GET /api/usage */
  async usageReport(): Promise<UsageResponse> {
    const db = this.o.ctx.db()
    return { by_device_model: await usageRepo.byDeviceModel(db), recent: await usageRepo.recent(db, 100) }
  }

  /** Records one gateway request (from Ollama's final counts) and emits `usage`. Never throws. */
  async recordUsage(rec: Omit<UsageRecord, 'id' | 'at'> & { at?: number }): Promise<UsageRecord | undefined> {
    const full = { ...rec, at: rec.at ?? this.o.ctx.now() }
    const labels = { device: rec.device_id ?? 'admin', model: rec.model ?? '', endpoint: rec.endpoint }
    this.o.metrics.requests.add({ ...labels, status: String(rec.status) })
    if (rec.prompt_tokens)
      this.o.metrics.tokens.add(
        { device: labels.device, model: labels.model, kind: 'prompt' },
        rec.prompt_tokens,
      )
    if (rec.completion_tokens) {
      this.o.metrics.tokens.add(
        { device: labels.device, model: labels.model, kind: 'completion' },
        rec.completion_tokens,
      )
    }
    try {
      const id = await usageRepo.insert(this.o.ctx.db(), full)
      const record = { id, ...full }
      this.o.ctx.bus.emit('usage', record)
      return record
    } catch (err) {
      this.o.ctx.log.error({ err }, 'could not record usage')
      return undefined
    }
  }
}

import { RateLimiter } from '../access/rate-limit'
import { isAdmin, type Principal } from '../access/access'
import type { DomainContext } from '../domain/context'
import type { SettingsService } from '../domain/settings'
import { SharedLLMError } from '../errors'
import type { MeModel, MeResponse, ModelView, UsageResponse } from '../protocol/api'
import type { FitVerdict, LoadVerdict, ModelInfo, Role, RunningModel, UsageRecord } from '../protocol/types'
import { usageRepo } from '../store/access'
import type { UsageService } from '../usage/service'
import { rolesRepo } from '../store/roles'
import { estimateFit, type FitEstimate, kvShapeFromModelInfo, type KvShape, MiB, toMiB } from './fit'
import { clampKeepAlive } from './keep-alive'
import type { GatewayMetrics } from './metrics'
import { runningVisibleTo, type Viewer } from '../protocol/visibility'
import { SharedCache } from './cache'
import type { GatewayRoute } from './http/routes'
import { pullModelName, requestModel } from './model-name'
import { modelAllowed, normaliseModelName } from './patterns'
import {
  type BodyShape,
  deviceOptions,
  optionsOf,
  pickFields,
  REQUEST_FIELDS,
  wholeTokens,
} from './request-body'

/** What the policy needs to know about models; the Ollama model manager provides it. */
export interface ModelCatalog {
  list(): Promise<ModelInfo[]>
  running(): Promise<RunningModel[]>
  show(name: string): Promise<{ model_info?: Record<string, unknown> | null }>
}

/**
 * The request body, for `admit`: an object already read, or a reader the policy calls with the byte limit
 * of the caller's role once the request has been given a slot (so a refused request never costs its body).
 */
export type BodySource =
  | Record<string, unknown>
  | ((limit: number, deviceId: string | null) => Promise<Record<string, unknown>>)

export interface Admission {
  deviceId: string | null
  /** The model the request runs, shows or pulls (validated); null for lists and version. */
  model: string | null
  /** The body to send to Ollama, built from the route's exact field names; `{}` for GET routes. */
  outgoing: Record<string, unknown>
  /** OpenAI streams: the usage-only event the gateway asked for is removed on the way back. */
  stripUsageEvent: boolean
  /** Frees the concurrency slot; safe to call more than once. */
  release(): void
  /** The context the fit check assumed (infer routes of devices); pooling estimates peers at it. */
  contextTokens?: number
}

/** Largest body the owner (admin secret or session) may send; a device's role says its own. */
export const OWNER_BODY_LIMIT = 16 * 1024 * 1024

export interface GatewayPolicyOptions {
  ctx: DomainContext
  settings: SettingsService
  metrics: GatewayMetrics
  catalog: () => ModelCatalog | undefined
  /** The host's free memory in MiB (primary devices, last sample), for "can it load now"; undefined: unknown. */
  freeMb?: () => number | undefined
  /** How long model lists and running models are cached on the hot path. @default 5000 */
  cacheMs?: number
  /** Budgets and allowed hours, checked at admission of inference requests. */
  usage?: () => UsageService | undefined
  /**
   * Pooling: the estimate of a model this host does not have, on the peers that serve it (the smallest),
   * so the device's slice is checked at the peer's estimate.
   */
  remoteEstimate?: (model: string, contextTokens: number) => FitEstimate | undefined
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
  private readonly tags: SharedCache<ModelInfo[]>
  private readonly ps: SharedCache<RunningModel[]>
  private readonly shapes = new Map<string, KvShape | null>()
  private readonly cacheMs: number

  constructor(private readonly o: GatewayPolicyOptions) {
    this.rate = new RateLimiter(1, 60_000, o.ctx.now)
    this.cacheMs = o.cacheMs ?? 5000
    this.tags = new SharedCache(
      () => this.o.catalog()?.list() ?? Promise.resolve([]),
      this.cacheMs,
      o.ctx.now,
    )
    this.ps = new SharedCache(
      () => this.o.catalog()?.running() ?? Promise.resolve([]),
      this.cacheMs,
      o.ctx.now,
    )
    // A pull or delete changes the model list: forget it.
    for (const t of ['model_pulled', 'model_deleted'] as const) o.ctx.bus.on(t, () => this.invalidate())
    o.ctx.bus.on('models_running', ({ models }) => this.ps.set(models))
  }

  invalidate(): void {
    this.tags.invalidate()
    this.ps.invalidate()
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

  /**
   * The gateway's one decision point: everything it enforces for a request is decided here, in this
   * order: requests per minute (lists count too), the concurrency slot (taken synchronously, before the
   * first `await`, so parallel requests cannot all pass), the body (read only now, bounded by the role),
   * the outgoing body built from the route's exact field names, pull rights, the role's model list, the
   * fit estimate, keep_alive, context and options. Resolves with the body to forward and `release`, or
   * rejects with the refusal (the slot is then already free).
   */
  admit(principal: Principal, route: GatewayRoute, body: BodySource = {}): Promise<Admission> {
    let slot: () => void
    try {
      slot = this.reserve(principal, route)
    } catch (err) {
      return Promise.reject(err)
    }
    return this.decide(principal, route, body, slot).catch((err: unknown) => {
      slot()
      throw err
    })
  }

  /** Rate and concurrency, synchronously; returns the function that frees the slot. */
  private reserve(principal: Principal, route: GatewayRoute): () => void {
    const holds = route.kind === 'infer' || route.kind === 'show' || route.kind === 'pull'
    const label = principal.kind === 'device' ? principal.device.id : 'admin'
    if (principal.kind === 'device') {
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
      if (!holds) return () => {}
      const active = this.activeStreams(device.id)
      // max_concurrent run at once and max_queued wait in the fair-share queue: past both, refused here
      // before the body is read (the queue itself keeps the two apart).
      if (active >= role.max_concurrent + role.max_queued) {
        this.reject(
          'concurrency',
          new SharedLLMError(
            'RATE_LIMITED',
            `role '${role.name}' allows ${role.max_concurrent} request${role.max_concurrent === 1 ? '' : 's'} at a time (max_concurrent)${role.max_queued > 0 ? ` and ${role.max_queued} waiting (max_queued)` : ''}, and ${active} ${active === 1 ? 'is' : 'are'} in progress; wait for ${active === 1 ? 'it' : 'one'} to finish`,
            { details: { retry_after: 1 } },
          ),
        )
      }
      this.inFlight.set(device.id, active + 1)
    } else if (!holds) {
      return () => {}
    }
    this.o.metrics.active.add({ device: label }, 1)
    let released = false
    return () => {
      if (released) return
      released = true
      if (principal.kind === 'device') {
        const n = (this.inFlight.get(label) ?? 1) - 1
        if (n <= 0) this.inFlight.delete(label)
        else this.inFlight.set(label, n)
      }
      this.o.metrics.active.add({ device: label }, -1)
    }
  }

  private async decide(
    principal: Principal,
    route: GatewayRoute,
    source: BodySource,
    slot: () => void,
  ): Promise<Admission> {
    const deviceId = principal.kind === 'device' ? principal.device.id : null
    if (!route.body) return { deviceId, model: null, outgoing: {}, stripUsageEvent: false, release: slot }
    if (route.kind === 'infer' && principal.kind === 'device') await this.budgets(principal)
    const limit = principal.kind === 'device' ? principal.role.max_body_bytes : OWNER_BODY_LIMIT
    const body = typeof source === 'function' ? await source(limit, deviceId) : source
    const picked = pickFields(route.body, body)
    if (route.kind === 'pull') {
      const model = pullModelName(picked.model)
      if (principal.kind === 'device') {
        const { role } = principal
        if (!role.can_pull) {
          this.reject(
            'pull_forbidden',
            new SharedLLMError(
              'FORBIDDEN',
              `role '${role.name}' cannot pull models; ask the host to change your role`,
            ),
          )
        }
        this.checkAllowed(role, model)
      }
      const outgoing: Record<string, unknown> = { model }
      if (typeof picked.stream === 'boolean') outgoing.stream = picked.stream
      return { deviceId, model, outgoing, stripUsageEvent: false, release: slot }
    }
    const model = requestModel(picked.model)
    const outgoing: Record<string, unknown> = { ...picked, model }
    if (route.kind === 'show') {
      if (principal.kind === 'device') this.checkAllowed(principal.role, model)
      return { deviceId, model, outgoing, stripUsageEvent: false, release: slot }
    }
    const options = 'options' in picked ? optionsOf(picked) : undefined
    if ('options' in picked) delete outgoing.options
    const stripUsageEvent = this.usageOption(route, picked, outgoing)
    if (principal.kind === 'admin') {
      if (options) outgoing.options = options
      const untrack = this.track(model)
      return { deviceId, model, outgoing, stripUsageEvent, release: both(untrack, slot) }
    }
    const { device, role } = principal
    const isAdminRole = role.id === 'role-admin'
    const opts = options ? (isAdminRole ? { ...options } : deviceOptions(options)) : {}
    // The context: the request's, clamped to the role; sent only on the native routes (the OpenAI ones
    // have no options, so Ollama loads its default context there).
    let requestedCtx: number | undefined
    if (opts.num_ctx !== undefined && opts.num_ctx !== null) {
      requestedCtx = wholeTokens(opts.num_ctx, 'options.num_ctx', 1)
      if (role.max_context_tokens !== null && requestedCtx > role.max_context_tokens) {
        opts.num_ctx = role.max_context_tokens
      }
    }
    // The admin role's options go as given (num_predict -1 included) unless the owner set it a maximum.
    if (!isAdminRole || role.max_predict_tokens !== null) this.boundPredict(route, role, opts, outgoing)
    if (Object.keys(opts).length > 0) outgoing.options = opts
    if (REQUEST_FIELDS[route.body].includes('keep_alive')) {
      const keepAlive = clampKeepAlive(picked.keep_alive, role.max_keep_alive_s)
      if (keepAlive === undefined) delete outgoing.keep_alive
      else outgoing.keep_alive = keepAlive
    }
    this.checkAllowed(role, model)
    const ctxTokens = this.contextFor(role, (opts.num_ctx as number | undefined) ?? requestedCtx)
    // pool: a model only peers have is checked against the device's slice at their estimate.
    const fit = (await this.estimate(model, ctxTokens)) ?? this.o.remoteEstimate?.(model, ctxTokens)
    const allocation = device.allocation_mb * MiB
    if (fit && fit.totalBytes > allocation) {
      this.reject(
        'does_not_fit',
        new SharedLLMError(
          'FORBIDDEN',
          `model '${model}' needs about ${toMiB(fit.totalBytes)} MiB${fit.source === 'estimate' ? ` at ${fit.contextTokens} tokens of context` : ' (as loaded)'} but device '${device.name}' has ${device.allocation_mb} MiB; ask the host for a larger allocation or use a smaller model`,
          { details: { required_mb: toMiB(fit.totalBytes), allocation_mb: device.allocation_mb } },
        ),
      )
    }
    const untrack = this.track(model)
    return {
      deviceId,
      model,
      outgoing,
      stripUsageEvent,
      release: both(untrack, slot),
      contextTokens: ctxTokens,
    }
  }

  /**
   * Pooling: whether `name` is installed here and whether it can load now (the same verdict as the views).
   */
  async placement(name: string, contextTokens: number): Promise<{ installed: boolean; load: LoadVerdict }> {
    const models = await this.models().catch(() => [] as ModelInfo[])
    const wanted = normaliseModelName(name)
    if (!models.some((m) => normaliseModelName(m.name) === wanted))
      return { installed: false, load: 'unknown' }
    return { installed: true, load: await this.loadVerdict(name, await this.estimate(name, contextTokens)) }
  }

  /**
   * num_predict (native) and max_tokens (OpenAI, which Ollama turns into num_predict in openai/openai.go):
   * 0 or more (a negative value asks for generation without end), at most the role's maximum, which is
   * also sent when the request names none.
   */
  private boundPredict(
    route: GatewayRoute,
    role: Role,
    opts: Record<string, unknown>,
    outgoing: Record<string, unknown>,
  ): void {
    const max = role.max_predict_tokens
    if (route.api === 'openai') {
      if (!REQUEST_FIELDS[route.body as BodyShape].includes('max_tokens')) return
      let n = outgoing.max_tokens
      if (n === null) n = undefined
      if (n !== undefined) n = wholeTokens(n, 'max_tokens', 0)
      if (max !== null && (n === undefined || (n as number) > max)) n = max
      if (n === undefined) delete outgoing.max_tokens
      else outgoing.max_tokens = n
      return
    }
    if (route.body === 'embed' || route.body === 'embeddings') {
      delete opts.num_predict
      return
    }
    let n = opts.num_predict
    if (n !== undefined) n = wholeTokens(n, 'options.num_predict', 0)
    if (max !== null && (n === undefined || (n as number) > max)) n = max
    if (n === undefined) delete opts.num_predict
    else opts.num_predict = n
  }

  /** OpenAI streams: ask Ollama for the usage event so usage can be recorded; true when the client did not. */
  private usageOption(
    route: GatewayRoute,
    picked: Record<string, unknown>,
    outgoing: Record<string, unknown>,
  ): boolean {
    if (route.api !== 'openai' || route.body === 'openai_embed' || picked.stream !== true) return false
    const so = picked.stream_options
    const given = so && typeof so === 'object' && !Array.isArray(so) ? (so as Record<string, unknown>) : {}
    if (given.include_usage === true) return false
    outgoing.stream_options = { ...given, include_usage: true }
    return true
  }

  /**
   * Allowed hours (403 naming the next opening) and token budgets (429 with Retry-After at the reset),
   * before the body is read. Checked at admission only: a stream that crosses a budget finishes.
   */
  private async budgets(principal: Extract<Principal, { kind: 'device' }>): Promise<void> {
    const usage = this.o.usage?.()
    if (!usage) return
    try {
      await usage.admit(principal.device, principal.role)
    } catch (err) {
      if (!(err instanceof SharedLLMError) || (err.code !== 'FORBIDDEN' && err.code !== 'RATE_LIMITED'))
        throw err
      this.reject(err.code === 'FORBIDDEN' ? 'hours' : 'token_budget', err)
    }
  }

  /** The role's model list. */
  private checkAllowed(role: Role, model: string): void {
    if (modelAllowed(role.allowed_models, model)) return
    this.reject(
      'model_not_allowed',
      new SharedLLMError(
        'FORBIDDEN',
        `role '${role.name}' may not use model '${model}'; allowed: ${role.allowed_models.join(', ')}`,
      ),
    )
  }

  /**
   * Which entries of a list route `principal` is shown. tags and /v1/models: the models its role allows
   * whose fit estimate is within its allocation (unknown estimates are listed, as `admit` would let them
   * through); ps: the loaded models by the `models_running` rule.
   */
  async listFilter(
    principal: Principal,
    route: GatewayRoute,
  ): Promise<(entry: Record<string, unknown>) => boolean> {
    if (route.kind === 'ps') {
      const viewer = this.viewer(principal)
      return (entry) =>
        typeof entry.name === 'string' &&
        runningVisibleTo(viewer, {
          name: entry.name,
          ...(typeof entry.size === 'number' ? { size: entry.size } : {}),
        })
    }
    const nameOf = (entry: Record<string, unknown>) => (route.kind === 'models' ? entry.id : entry.name)
    if (principal.kind === 'admin') return (entry) => typeof nameOf(entry) === 'string'
    const { role } = principal
    const exceeds = new Set(
      (await this.modelsFor(principal))
        .filter((v) => v.verdict === 'exceeds_allocation')
        .map((v) => normaliseModelName(v.name)),
    )
    return (entry) => {
      const name = nameOf(entry)
      return (
        typeof name === 'string' &&
        modelAllowed(role.allowed_models, name) &&
        !exceeds.has(normaliseModelName(name))
      )
    }
  }

  /** Which loaded models `principal` is shown (`/ollama/api/ps` and the `models_running` event). */
  viewer(principal: Principal): Viewer {
    if (isAdmin(principal) || principal.kind !== 'device') return { kind: 'admin' }
    return {
      kind: 'device',
      deviceId: principal.device.id,
      role: principal.role,
      allocationMb: principal.device.allocation_mb,
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
    if (!this.o.catalog()) return []
    return this.tags.get()
  }

  /** Ollama's running models, cached for `cacheMs` on the hot path; `fresh` reads them now (the views). */
  private async running(fresh = false): Promise<RunningModel[]> {
    if (!this.o.catalog()) return []
    return this.ps.get({ fresh }).catch(() => [] as RunningModel[])
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
      usage: await (this.o.usage?.()?.totals(principal.device.id) ??
        usageRepo.totals(db, principal.device.id)),
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

/** Runs both, in order, the first time it is called only. */
function both(a: () => void, b: () => void): () => void {
  let done = false
  return () => {
    if (done) return
    done = true
    a()
    b()
  }
}

import { RateLimiter } from '../access/rate-limit'
import { isAdmin, type Principal } from '../access/access'
import type { DomainContext } from '../domain/context'
import type { SettingsService } from '../domain/settings'
import { SharedLLMError } from '../errors'
import type { MeModel, MeResponse, ModelView, UsageResponse } from '../protocol/api'
import type { FitVerdict, LoadVerdict, ModelInfo, Role, RunningModel } from '../protocol/types'
import { ADMIN_ROLE_ID } from '../protocol/types'
import { usageRepo } from '../store/access'
import type { UsageService } from '../usage/service'
import { rolesRepo } from '../store/roles'
import { type FitRatio, fitRatiosRepo } from './fit-ratios'
import {
  estimateFit,
  type FitEstimate,
  isMLX,
  kvCacheBytes,
  kvShapeFromModelInfo,
  type KvShape,
  MiB,
  needsVerboseShow,
  SINGLE_SEQUENCE_FAMILIES,
  toMiB,
} from './fit'
import { clampKeepAlive, OLLAMA_DEFAULT_KEEP_ALIVE_S } from './keep-alive'
import type { GatewayMetrics } from './metrics'
import { runningVisibleTo, type Viewer } from '../protocol/visibility'
import { SharedCache } from './cache'
import type { GatewayRoute } from './http/routes'
import { pullModelName, requestModel } from './model-name'
import { type ReplyShape, type Translation, translateRequest } from './openai'
import { canonicalModelName, type ResolvedName, resolveModelName } from '../ollama/names'
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
  show(
    name: string,
    opts?: { verbose?: boolean },
  ): Promise<{ model_info?: Record<string, unknown> | null; capabilities?: string[] | undefined }>
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
  /** OpenAI routes: the native answer is rewritten into this OpenAI shape on its way back. */
  reply?: ReplyShape
  /** Frees the concurrency slot; safe to call more than once. */
  release(): void
  /** The context the fit check assumed (infer routes of devices); pooling estimates peers at it. */
  contextTokens?: number
}

/** The native request shape each OpenAI route is translated to. */
const NATIVE_SHAPE: Record<Translation, BodyShape> = { chat: 'chat', completion: 'generate', embed: 'embed' }

/** Ollama's own words for a model it does not have (server/routes.go), as a 404 from the gateway. */
function notInstalled(name: string): SharedLLMError {
  return new SharedLLMError('MODEL_NOT_FOUND', `model '${name}' not found`, { details: { model: name } })
}

function resolvedSource(name: string): string {
  try {
    return resolveModelName(name).source
  } catch {
    return 'unspecified'
  }
}

/** The role field `allow_cloud` (migration 008); a role read before it existed counts as no. */
export function roleAllowsCloud(role: Role): boolean {
  return role.allow_cloud === true
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
  private readonly ratios = new Map<string, FitRatio | null>()
  private readonly shapeReads = new Map<string, Promise<KvShape | undefined>>()
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
    o.ctx.bus.on('models_running', ({ models }) => {
      this.ps.set(models)
      void this.measure(models)
    })
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
    if (!route.body) return { deviceId, model: null, outgoing: {}, release: slot }
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
      // A cloud model's pull makes a stub that runs on ollama.com: the same rule as running one.
      this.checkCloudName(principal, model, 'pulling')
      const outgoing: Record<string, unknown> = { model }
      if (typeof picked.stream === 'boolean') outgoing.stream = picked.stream
      return { deviceId, model, outgoing, release: slot }
    }
    if (route.kind === 'show') {
      const model = requestModel(picked.model)
      const outgoing: Record<string, unknown> = { ...picked, model }
      if (principal.kind === 'device') this.checkAllowed(principal.role, model)
      // Ollama answers a cloud model's show from ollama.com (server/routes.go ShowHandler).
      this.checkCloudName(principal, model, 'showing')
      return { deviceId, model, outgoing, release: slot }
    }
    // OpenAI routes become native ones here (openai.ts), so that everything below applies to them too.
    let reply: ReplyShape | undefined
    let native = picked
    let shape = route.body
    if (route.translate) {
      const t = translateRequest(route.translate, picked)
      reply = t.reply
      native = { ...t.native, ...(picked.model !== undefined ? { model: picked.model } : {}) }
      shape = NATIVE_SHAPE[route.translate]
    }
    const name = resolveModelName(requestModel(native.model))
    const role = principal.kind === 'device' ? principal.role : undefined
    const target = await this.resolveInstalled(name, role)
    const model = target.name
    const outgoing: Record<string, unknown> = { ...native, model }
    const options = 'options' in native ? optionsOf(native) : undefined
    if ('options' in native) delete outgoing.options
    const keepAliveField = REQUEST_FIELDS[shape].includes('keep_alive')
    if (principal.kind === 'admin') {
      const opts = options ? { ...options } : {}
      if (!target.cloud) {
        const requested =
          opts.num_ctx === undefined || opts.num_ctx === null
            ? undefined
            : wholeTokens(opts.num_ctx, 'options.num_ctx', 1)
        opts.num_ctx = this.contextFor(null, requested, target.facts?.trainedContext)
      }
      outgoing.options = opts
      if (keepAliveField) {
        const keepAlive = clampKeepAlive(native.keep_alive, null)
        if (keepAlive === undefined) delete outgoing.keep_alive
        else outgoing.keep_alive = keepAlive
      }
      const untrack = this.track(model)
      return { deviceId, model, outgoing, reply, release: both(untrack, slot) }
    }
    const { device } = principal
    const r = role as Role
    const isAdminRole = r.id === ADMIN_ROLE_ID
    const opts = options ? (isAdminRole ? { ...options } : deviceOptions(options)) : {}
    // The context is always ours: the request's, else the default, within the role and the trained context.
    let requestedCtx: number | undefined
    if (opts.num_ctx !== undefined && opts.num_ctx !== null)
      requestedCtx = wholeTokens(opts.num_ctx, 'options.num_ctx', 1)
    const ctxTokens = this.contextFor(r, requestedCtx, target.facts?.trainedContext)
    if (!target.cloud) opts.num_ctx = ctxTokens
    else delete opts.num_ctx
    // The admin role's options go as given (num_predict -1 included) unless the owner set it a maximum.
    if (!isAdminRole || r.max_predict_tokens !== null) {
      this.boundPredict(shape, r, opts, reply ? 'max_tokens' : 'options.num_predict')
    }
    if (Object.keys(opts).length > 0) outgoing.options = opts
    if (keepAliveField) {
      // A role without a maximum still sends one when the request names none: Ollama's documented
      // default (envconfig/config.go KeepAlive, 5 min), never the attached Ollama's OLLAMA_KEEP_ALIVE.
      const keepAlive = clampKeepAlive(native.keep_alive, r.max_keep_alive_s) ?? OLLAMA_DEFAULT_KEEP_ALIVE_S
      outgoing.keep_alive = keepAlive
    }
    if (!target.cloud) {
      // pool: a model only peers have is checked against the device's slice at their estimate.
      const fit = (await this.estimate(model, ctxTokens)) ?? this.o.remoteEstimate?.(model, ctxTokens)
      const allocation = device.allocation_mb * MiB
      if (fit && fit.totalBytes > allocation) {
        const how =
          fit.source === 'loaded'
            ? ' (as loaded)'
            : ` at ${fit.contextTokens} tokens of context${fit.conservative ? ' (estimated conservatively: its shape could not be read)' : ''}`
        this.reject(
          'does_not_fit',
          new SharedLLMError(
            'FORBIDDEN',
            `model '${model}' needs about ${toMiB(fit.totalBytes)} MiB${how} but device '${device.name}' has ${device.allocation_mb} MiB; ask the host for a larger allocation or use a smaller model`,
            { details: { required_mb: toMiB(fit.totalBytes), allocation_mb: device.allocation_mb } },
          ),
        )
      }
    }
    const untrack = this.track(model)
    return {
      deviceId,
      model,
      outgoing,
      reply,
      release: both(untrack, slot),
      contextTokens: ctxTokens,
    }
  }

  /** A name with a cloud suffix, for the routes that do not look the model up (pull, show). */
  private checkCloudName(principal: Principal, model: string, doing: string): void {
    if (resolvedSource(model) !== 'cloud') return
    const role = principal.kind === 'device' ? principal.role : undefined
    if (this.o.settings.get('cloud_models_enabled') && (!role || roleAllowsCloud(role))) return
    this.reject(
      'cloud_model',
      new SharedLLMError(
        'FORBIDDEN',
        `model '${model}' is a cloud model: it runs on ollama.com and the prompt leaves the network; ${doing} it needs cloud_models_enabled and a role with allow_cloud`,
      ),
    )
  }

  /**
   * The installed model a name resolves to (Ollama's resolution: resolveModelName), after the role's list
   * and the cloud rule. A model that is not installed is a 404 here and never reaches Ollama; a cloud
   * model (`:cloud`, `-cloud`, or a `remote_host` in the list) needs the role's `allow_cloud` and the
   * owner's `cloud_models_enabled` (server/routes.go proxies those to ollama.com).
   */
  private async resolveInstalled(
    name: ResolvedName,
    role: Role | undefined,
  ): Promise<{ name: string; cloud: boolean; facts: KvShape | undefined }> {
    if (role) this.checkAllowed(role, name.display)
    const models = await this.models()
    const entry = models.find((m) => canonicalModelName(m.name) === name.display)
    const remote = !!entry?.remote_host
    const cloud = name.source === 'cloud' || remote
    if (cloud) {
      if (name.source === 'local') throw notInstalled(name.original)
      const enabled = this.o.settings.get('cloud_models_enabled')
      if (!enabled || (role && !roleAllowsCloud(role))) {
        this.reject(
          'cloud_model',
          new SharedLLMError(
            'FORBIDDEN',
            `model '${name.original}' is a cloud model: it runs on ollama.com and the prompt leaves the network; ${!enabled ? 'the host owner has not turned on cloud models (setting cloud_models_enabled)' : `role '${role?.name}' may not use cloud models (allow_cloud)`}`,
          ),
        )
      }
      return { name: entry ? entry.name : name.original, cloud: true, facts: undefined }
    }
    if (!entry) {
      // pool: a model only peers have goes there (the pool routes it); anything else is not installed.
      if (this.o.remoteEstimate?.(name.display, 1) !== undefined) {
        return { name: name.display, cloud: false, facts: undefined }
      }
      throw notInstalled(name.original)
    }
    return { name: entry.name, cloud: false, facts: await this.shape(entry) }
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
  private boundPredict(shape: BodyShape, role: Role, opts: Record<string, unknown>, field: string): void {
    const max = role.max_predict_tokens
    if (shape === 'embed' || shape === 'embeddings') {
      delete opts.num_predict
      return
    }
    let n = opts.num_predict
    if (n !== undefined && n !== null) n = wholeTokens(n, field, 0)
    else n = undefined
    if (max !== null && (n === undefined || (n as number) > max)) n = max
    if (n === undefined) delete opts.num_predict
    else opts.num_predict = n
  }

  /**
   * Allowed hours (403 naming the next opening) and token budgets (429 with Retry-After at the reset) of a
   * device's inference request: at admission, before the body is read, and again when a request that
   * waited in the queue gets its turn. A stream that crosses a budget while it runs finishes.
   */
  async budgets(principal: Extract<Principal, { kind: 'device' }>): Promise<void> {
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
    const usable = await this.modelsFor(principal)
    const exceeds = new Set(
      usable.filter((v) => v.verdict === 'exceeds_allocation').map((v) => normaliseModelName(v.name)),
    )
    // Cloud models are listed only where they may be run (modelsFor leaves them out otherwise).
    const cloudOk = new Set(usable.filter((v) => v.cloud).map((v) => normaliseModelName(v.name)))
    return (entry) => {
      const name = nameOf(entry)
      if (typeof name !== 'string') return false
      const key = normaliseModelName(name)
      const cloud = !!entry.remote_host || resolvedSource(name) === 'cloud'
      return modelAllowed(role.allowed_models, name) && !exceeds.has(key) && (!cloud || cloudOk.has(key))
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

  /**
   * The context the gateway sends and estimates at: the request's, else the default setting, clamped to
   * the role's maximum and to the model's trained context (Ollama caps at it too, server/sched.go).
   */
  contextFor(role: Role | null, requested?: number, trained?: number): number {
    let n =
      requested && Number.isInteger(requested) && requested > 0
        ? requested
        : this.o.settings.get('default_context_tokens')
    if (role && role.max_context_tokens !== null) n = Math.min(n, role.max_context_tokens)
    if (trained && trained > 0) n = Math.min(n, trained)
    return n
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

  /**
   * The model's shape from `/api/show`, cached per digest. The plain answer leaves per-layer arrays and
   * the token list out (`null`, server/routes.go getModelInfo without verbose); then it is read once
   * more with `verbose: true`.
   */
  /**
   * KV cache bytes per token of context of an installed model as this host loads it (its shape read as
   * for the fit, this Ollama's KV type, num_parallel unless the model runs one sequence), for the status
   * this host gives its peers; null when the shape cannot be read.
   */
  async kvBytesPerToken(model: ModelInfo): Promise<number | null> {
    const shape = await this.shape(model)
    if (!shape) return null
    const { numParallel, kvCacheType } = this.runtime()
    return kvCacheBytes(shape, {
      contextTokens: 1,
      numParallel: shape.singleSequence ? 1 : numParallel,
      kvCacheType,
    })
  }

  private shape(model: ModelInfo): Promise<KvShape | undefined> {
    const key = model.digest || model.name
    if (this.shapes.has(key)) return Promise.resolve(this.shapes.get(key) ?? undefined)
    // Parallel requests for one model share one read (a verbose show can be megabytes).
    let pending = this.shapeReads.get(key)
    if (!pending) {
      pending = this.readShape(model, key).finally(() => this.shapeReads.delete(key))
      this.shapeReads.set(key, pending)
    }
    return pending
  }

  private async readShape(model: ModelInfo, key: string): Promise<KvShape | undefined> {
    const catalog = this.o.catalog()
    if (!catalog) return undefined
    let shown = await catalog.show(model.name).catch(() => undefined)
    if (shown && needsVerboseShow(shown.model_info)) {
      shown = (await catalog.show(model.name, { verbose: true }).catch(() => undefined)) ?? shown
    }
    const shape = kvShapeFromModelInfo(shown?.model_info ?? undefined) ?? null
    if (
      shape &&
      isMLX(model) &&
      shown?.model_info?.[`${shape.architecture}.attention.key_length`] === undefined
    ) {
      // x/server/show.go buildModelInfo copies no head_dim from config.json: embedding / heads may be wrong
      // (Qwen3: 1024 / 16 = 64, its head_dim is 128), so the figure is not a plain "fits"
      shape.guessed.push('attention.key_length')
    }
    if (shape) {
      // server/sched.go: a model without the completion capability (embedding) loads one sequence;
      // so do the families that do not support parallel requests (ModelFamily, our details.family).
      const caps = shown?.capabilities
      const family = model.details?.family
      if (
        (Array.isArray(caps) && !caps.includes('completion')) ||
        (family && SINGLE_SEQUENCE_FAMILIES.has(family))
      ) {
        shape.singleSequence = true
      }
    }
    if (shown) {
      if (this.shapes.size > 500) this.shapes.clear()
      this.shapes.set(key, shape)
    }
    return shape ?? undefined
  }

  /**
   * num_parallel and KV cache type of the Ollama in use: the settings, which an Ollama sharedLLM starts
   * is given as OLLAMA_NUM_PARALLEL and OLLAMA_KV_CACHE_TYPE, and which describe an attached one.
   */
  private runtime(): { numParallel: number; kvCacheType: string } {
    return {
      numParallel: this.o.settings.get('ollama_num_parallel'),
      kvCacheType: this.o.settings.get('ollama_kv_cache_type'),
    }
  }

  /** The measured/estimated ratio of a model (by digest), from memory or SQLite. */
  private async ratioFor(digest: string): Promise<FitRatio | undefined> {
    if (!digest) return undefined
    if (this.ratios.has(digest)) return this.ratios.get(digest) ?? undefined
    const row = await fitRatiosRepo.get(this.o.ctx.db(), digest).catch(() => undefined)
    this.ratios.set(digest, row ?? null)
    // A measurement from before a restart is exported again once the model is looked at.
    if (row) this.o.metrics.fitRatio.set({ model: row.model }, Math.round(row.ratio * 1000) / 1000)
    return row
  }

  /** The estimate without the measured ratio (what a measurement is compared with). */
  private async rawEstimate(model: ModelInfo, contextTokens: number): Promise<FitEstimate> {
    return estimateFit(model.size, await this.shape(model), { contextTokens, ...this.runtime() })
  }

  /**
   * After a load: `/api/ps` size at its context_length against the estimate there, stored per digest
   * and applied to later estimates of that model. Never throws.
   */
  private async measure(running: RunningModel[]): Promise<void> {
    try {
      const models = await this.models()
      for (const r of running) {
        // An MLX runner reports the memory it holds so far (x/mlxrunner/client.go MemorySize), not a load
        // at its context: its cache grows with the tokens, so no ratio is learned from it.
        if (!r.context_length || r.size <= 0 || isMLX(r)) continue
        const m = models.find((x) => canonicalModelName(x.name) === canonicalModelName(r.name))
        if (!m) continue
        const digest = m.digest || r.digest
        if (!digest) continue
        const prev = await this.ratioFor(digest)
        if (prev && prev.context_length === r.context_length && prev.measured_bytes === r.size) continue
        const est = await this.rawEstimate(m, r.context_length)
        const ratio = r.size / est.totalBytes
        const row: FitRatio = {
          digest,
          model: m.name,
          context_length: r.context_length,
          estimate_bytes: est.totalBytes,
          measured_bytes: r.size,
          ratio,
          measured_at: this.o.ctx.now(),
        }
        this.ratios.set(digest, row)
        this.o.metrics.fitRatio.set({ model: m.name }, Math.round(ratio * 1000) / 1000)
        await fitRatiosRepo.put(this.o.ctx.db(), row)
      }
    } catch (err) {
      this.o.ctx.log.warn({ err }, 'could not compare loaded sizes with the estimate')
    }
  }

  /**
   * Memory the model needs at `contextTokens`. A loaded model's `/api/ps` size is trusted only at the
   * context it was loaded with (another num_ctx makes Ollama reload it at the new size; a loaded MLX model
   * is estimated at its loaded context when that is larger, as it does not reload); otherwise the
   * estimate, scaled by the ratio measured on an earlier load of this digest. Undefined when the model is
   * not installed.
   */
  async estimate(
    name: string,
    contextTokens: number,
    opts: { measured?: boolean } = {},
  ): Promise<FitEstimate | undefined> {
    const wanted = normaliseModelName(name)
    let models: ModelInfo[]
    try {
      models = await this.models()
    } catch {
      return undefined
    }
    const loaded = (await this.running()).find((m) => normaliseModelName(m.name) === wanted)
    if (
      opts.measured !== false &&
      loaded &&
      loaded.size > 0 &&
      loaded.context_length === contextTokens &&
      !isMLX(loaded)
    ) {
      return {
        weightsBytes: loaded.size,
        kvBytes: null,
        overheadBytes: 0,
        totalBytes: loaded.size,
        contextTokens,
        source: 'loaded',
        conservative: false,
        ratio: 1,
      }
    }
    const model = models.find((m) => normaliseModelName(m.name) === wanted)
    if (!model) return undefined
    const measured = opts.measured === false ? undefined : await this.ratioFor(model.digest)
    // A ratio far from 1 means something else is off (a partial offload, another runner): ignore it.
    const ratio = measured && measured.ratio > 0.5 && measured.ratio < 2 ? measured.ratio : 1
    // A loaded MLX model keeps the context it was loaded with (server/sched.go needsReload compares no
    // options for MLX): a request runs at that one, and its cache can grow to it, whatever num_ctx it sends.
    const runsAt =
      loaded && isMLX(loaded) && loaded.context_length && loaded.context_length > contextTokens
        ? loaded.context_length
        : contextTokens
    return estimateFit(
      model.size,
      await this.shape(model),
      { contextTokens: runsAt, ...this.runtime() },
      ratio,
    )
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

  /** Whether a listed model runs on ollama.com (a `remote_host`, or a `:cloud` / `-cloud` name). */
  private isCloud(m: ModelInfo): boolean {
    if (m.remote_host) return true
    try {
      return resolveModelName(m.name).source === 'cloud'
    } catch {
      return false
    }
  }

  /** GET /api/models: every model with a verdict for each role's maximum, and estimate vs measured. */
  async modelViews(): Promise<ModelView[]> {
    const [models, running, roles] = await Promise.all([
      this.models(),
      this.running(true),
      rolesRepo.list(this.o.ctx.db()),
    ])
    const loaded = new Set(running.map((m) => normaliseModelName(m.name)))
    return Promise.all(
      models.map(async (m) => {
        const cloud = this.isCloud(m)
        const trained = cloud ? undefined : (await this.shape(m))?.trainedContext
        const fits = await Promise.all(
          roles.map(async (role) => {
            const fit = cloud
              ? undefined
              : await this.estimate(m.name, this.contextFor(role, undefined, trained))
            const allowed = modelAllowed(role.allowed_models, m.name) && (!cloud || roleAllowsCloud(role))
            return {
              role_id: role.id,
              verdict: allowed ? this.verdict(fit, role.max_memory_mb) : ('not_allowed' as FitVerdict),
              required_mb: fit ? toMiB(fit.totalBytes) : null,
              conservative: fit?.conservative === true,
            }
          }),
        )
        const defaultCtx = this.contextFor(null, undefined, trained)
        const load = cloud
          ? ('unknown' as LoadVerdict)
          : await this.loadVerdict(m.name, await this.estimate(m.name, defaultCtx))
        const measured = cloud ? undefined : await this.ratioFor(m.digest)
        return {
          ...m,
          fits,
          loaded: loaded.has(normaliseModelName(m.name)),
          load,
          cloud,
          ...(cloud ? { cloud_note: 'cloud, leaves the network' } : {}),
          measurement: measured
            ? {
                context_length: measured.context_length,
                estimate_mb: toMiB(measured.estimate_bytes),
                measured_mb: toMiB(measured.measured_bytes),
                ratio: Math.round(measured.ratio * 1000) / 1000,
              }
            : null,
        }
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
          conservative: false,
          cloud: this.isCloud(m),
          ...(this.isCloud(m) ? { cloud_note: 'cloud, leaves the network' } : {}),
        })),
      )
    }
    const { role, device } = principal
    const cloudOn = this.o.settings.get('cloud_models_enabled') && roleAllowsCloud(role)
    const allowed = models.filter(
      (m) => modelAllowed(role.allowed_models, m.name) && (cloudOn || !this.isCloud(m)),
    )
    return Promise.all(
      allowed.map(async (m) => {
        const cloud = this.isCloud(m)
        if (cloud) {
          return {
            name: m.name,
            size: m.size,
            verdict: 'fits' as FitVerdict,
            required_mb: 0,
            load: 'unknown' as LoadVerdict,
            conservative: false,
            cloud: true,
            cloud_note: 'cloud, leaves the network',
          }
        }
        const trained = (await this.shape(m))?.trainedContext
        const fit = await this.estimate(m.name, this.contextFor(role, undefined, trained))
        return {
          name: m.name,
          size: m.size,
          verdict: this.verdict(fit, device.allocation_mb),
          required_mb: fit ? toMiB(fit.totalBytes) : null,
          load: await this.loadVerdict(m.name, fit),
          conservative: fit?.conservative === true,
          cloud: false,
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
    // The per-request rows are written in batches: the owner's report first writes what is still buffered,
    // so a request that just ended is in it (the report is a dashboard page, not the request path).
    await this.o.usage?.()?.writePending()
    return { by_device_model: await usageRepo.byDeviceModel(db), recent: await usageRepo.recent(db, 100) }
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

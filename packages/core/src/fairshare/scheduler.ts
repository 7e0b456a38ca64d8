import { SharedLLMError } from '../errors'
import type { QueuePosition, QueueSnapshot, Role } from '../protocol/types'
import { type Clock, systemClock } from './clock'

/**
 * The fair-share queue: weighted fair queuing on tokens with the Virtual Token Counter of Sheng et al.,
 * "Fairness in Serving Large Language Models" (OSDI 2024).
 *
 * Each device has a FIFO queue and a counter of the tokens it has been served (input ×1, output ×2, divided
 * by its role's share_weight). The backlogged device with the smallest counter goes next (ties: the oldest
 * head); a device that becomes backlogged is lifted to the smallest counter among the backlogged (or to the
 * counter of the last device that left the backlog when none is), so idle time is not banked.
 *
 * The queue releases to Ollama only as many requests per model as Ollama runs at once: Ollama gives every
 * loaded model a runner whose weighted semaphore has OLLAMA_NUM_PARALLEL slots (llm/llama_server.go `sem`;
 * envconfig/config.go `NumParallel`, default 1; server/sched.go `load` forces 1 for embedding models and a
 * few architectures) and queues the rest first in, first out (server/sched.go `pendingReqCh`, up to
 * OLLAMA_MAX_QUEUE 512, then ErrMaxQueue "server busy"): the unfairness this module replaces.
 *
 * Pure: no I/O; time and timers come from the injected clock.
 */

export interface QueueLimits {
  role_id: string
  /** The role's share_weight (≥ 1). */
  share_weight: number
  /** Running at once for this device. */
  max_concurrent: number
  /** Waiting (not running) for this device; past it the request is refused with Retry-After. */
  max_queued: number
  /** Longest wait in seconds; past it the request fails with Retry-After. */
  max_wait_s: number
}

/** A role's queue limits, as the gateway passes them with each request. */
export function queueLimitsOf(
  role: Pick<Role, 'id' | 'share_weight' | 'max_concurrent' | 'max_queued' | 'max_wait_s'>,
): QueueLimits {
  return {
    role_id: role.id,
    share_weight: role.share_weight,
    max_concurrent: role.max_concurrent,
    max_queued: role.max_queued,
    max_wait_s: role.max_wait_s,
  }
}

export interface QueueRequest {
  /** Unique per request; used in queue_position events. */
  id: string
  device_id: string
  /** The resolved model name (as Ollama names it, e.g. `llama3.2:3b`). */
  model: string
  limits: QueueLimits
  /** Prompt tokens estimated before the request (`estimatePromptTokens`). */
  prompt_tokens: number
  /** Aborting it while the request waits cancels it and frees its place. */
  signal?: AbortSignal
}

/** What Ollama's final chunk says (api/types.go `Metrics`: prompt_eval_count, eval_count). */
export interface ExactCounts {
  prompt_eval_count?: number
  eval_count?: number
}

/** A request released to Ollama. `finish()` must be called once when it ends, however it ends. */
export interface Lease {
  readonly id: string
  readonly device_id: string
  readonly model: string
  /** Milliseconds the request waited in the queue. */
  readonly waited_ms: number
  /** Aborted when the owner reclaims the GPU or the device is dropped; its reason is a SharedLLMError. */
  readonly signal: AbortSignal
  /** Output tokens streamed so far in this chunk (one per chunk for Ollama's NDJSON streams). */
  output(tokens: number): void
  /** Ends the request: corrects the counter with Ollama's exact counts and frees its slot. Idempotent. */
  finish(exact?: ExactCounts): void
}

export interface Ticket {
  readonly id: string
  /** Resolves when the request may go to Ollama; rejects with a SharedLLMError when it never will. */
  readonly granted: Promise<Lease>
  /** Cancels a waiting request (frees its place); no effect once granted. */
  cancel(): void
}

export interface FairSchedulerOptions {
  clock?: Clock
  /** Requests Ollama runs at once for a model (OLLAMA_NUM_PARALLEL, or the `ollama_num_parallel` setting). */
  capacity: (model: string) => number
  /** Models Ollama has loaded now (its `/api/ps`). Models with a request running count as loaded too. */
  loadedModels?: () => Iterable<string>
  /**
   * Whether a model that is not loaded would load without evicting one (it fits the free memory). When
   * false, a request for it waits while loaded models have work, up to `modelSwitchWaitMs`. @default false
   */
  canLoadAlongside?: (model: string) => boolean
  /** The `model_switch_wait_s` setting in ms. @default 20 s */
  modelSwitchWaitMs?: () => number
  /** Called after every change of the queue (to publish positions and the dashboard's view). */
  onChange?: () => void
}

export type PauseMode = 'wait' | 'refuse'

/** Buckets of sharedllm_queue_wait_seconds. */
export const QUEUE_WAIT_BUCKETS_S = [0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300] as const

const EWMA_ALPHA = 0.3

interface Waiting {
  id: string
  device: DeviceState
  model: string
  prompt: number
  enqueuedAt: number
  seq: number
  maxWaitMs: number
  timer: unknown
  resolve: (lease: Lease) => void
  reject: (err: SharedLLMError) => void
  offAbort?: () => void
}

interface Running {
  id: string
  device: DeviceState
  model: string
  startedAt: number
  prompt: number
  streamed: number
  controller: AbortController
  finished: boolean
}

interface DeviceState {
  id: string
  roleId: string
  weight: number
  maxConcurrent: number
  counter: number
  queue: Waiting[]
  running: number
  /** Tokens (weighted) served in total, for the dashboard and tests. */
  served: number
}

interface Histogram {
  counts: number[]
  sum: number
  count: number
}

export class FairScheduler {
  private readonly clock: Clock
  private readonly devices = new Map<string, DeviceState>()
  private readonly running = new Map<string, Running>()
  private readonly modelRunning = new Map<string, number>()
  private readonly paused = new Map<string, PauseMode>()
  private readonly serviceMs = new Map<string, number>()
  private readonly outputTokens = new Map<string, number>()
  private readonly waits = new Map<string, Histogram>()
  private readonly ids = new Set<string>()
  private lastLeftCounter = 0
  private seq = 0
  private pumping = false
  /** Earliest instant a held head (a request that would make Ollama switch models) ages past the wait. */
  private heldUntil: number | undefined
  private agingTimer: unknown
  private published = new Map<string, string>()
  private closed = false

  constructor(private readonly options: FairSchedulerOptions) {
    this.clock = options.clock ?? systemClock
  }

  /**
   * Queues a request. Throws RATE_LIMITED (429) when the device already has `max_queued` waiting, and
   * UPSTREAM_UNAVAILABLE (503) when the owner paused its role with `refuse`; both carry `retry_after_s`.
   */
  submit(req: QueueRequest): Ticket {
    if (this.closed) {
      throw new SharedLLMError('UPSTREAM_UNAVAILABLE', 'the host is shutting down; try again in a minute', {
        details: { reason: 'shutdown', retry_after_s: 60 },
      })
    }
    if (this.ids.has(req.id)) throw new SharedLLMError('CONFLICT', `request id '${req.id}' is already queued`)
    const limits = checkLimits(req.limits)
    const prompt = Number.isFinite(req.prompt_tokens) ? Math.max(0, req.prompt_tokens) : 0
    if (this.paused.get(limits.role_id) === 'refuse') throw pausedError(limits.role_id)
    if (req.signal?.aborted) throw cancelled(req.id)

    const d = this.device(req.device_id, limits)
    const now = this.clock.now()
    const wasIdle = d.queue.length === 0
    const counterBefore = d.counter
    const lastLeftBefore = this.lastLeftCounter
    if (wasIdle) this.lift(d)
    let resolve!: (lease: Lease) => void
    let reject!: (err: SharedLLMError) => void
    const granted = new Promise<Lease>((res, rej) => {
      resolve = res
      reject = rej
    })
    // Nobody may be listening yet when a request fails at once; the caller's await still sees it.
    granted.catch(() => {})
    const w: Waiting = {
      id: req.id,
      device: d,
      model: req.model,
      prompt,
      enqueuedAt: now,
      seq: ++this.seq,
      maxWaitMs: limits.max_wait_s * 1000,
      timer: undefined,
      resolve,
      reject,
    }
    d.queue.push(w)
    this.ids.add(w.id)
    this.pump(false)

    if (d.queue.includes(w) && d.queue.length > limits.max_queued) {
      // It would have to wait and the device's waiting room is full: undo, as if it never came.
      this.remove(w)
      if (wasIdle && d.queue.length === 0) {
        d.counter = counterBefore
        this.lastLeftCounter = lastLeftBefore
      }
      const retry = this.retryAfterS(d)
      throw new SharedLLMError(
        'RATE_LIMITED',
        `this device already has ${limits.max_queued} request${limits.max_queued === 1 ? '' : 's'} waiting, the most its role allows (max_queued); try again in ${retry} s`,
        { details: { reason: 'max_queued', max_queued: limits.max_queued, retry_after_s: retry } },
      )
    }
    if (d.queue.includes(w)) {
      w.timer = this.clock.setTimer(() => this.expire(w), w.maxWaitMs)
      if (req.signal) {
        const signal = req.signal
        const onAbort = () => this.cancelWaiting(w, cancelled(w.id))
        signal.addEventListener('abort', onAbort, { once: true })
        w.offAbort = () => signal.removeEventListener('abort', onAbort)
      }
    }
    this.changed()
    return { id: w.id, granted, cancel: () => this.cancelWaiting(w, cancelled(w.id)) }
  }

  /**
   * Shutting down: every waiting request fails (503, the host is stopping), timers stop, and new requests
   * are refused. Running leases are the caller's to end.
   */
  close(): void {
    this.closed = true
    const error = new SharedLLMError(
      'UPSTREAM_UNAVAILABLE',
      'the host is shutting down; try again in a minute',
      {
        details: { reason: 'shutdown', retry_after_s: 60 },
      },
    )
    for (const d of this.devices.values()) {
      for (const w of [...d.queue]) {
        this.remove(w)
        w.reject(error)
      }
    }
    if (this.agingTimer !== undefined) this.clock.clearTimer(this.agingTimer)
    this.agingTimer = undefined
    this.changed()
  }

  /** Fails every waiting request of a device at once (revocation); with `running`, aborts its leases too. */
  drop(deviceId: string, options: { error?: SharedLLMError; running?: boolean } = {}): number {
    const d = this.devices.get(deviceId)
    if (!d) return 0
    const error =
      options.error ??
      new SharedLLMError('UNAUTHORIZED', "this device's access was revoked; its queued requests were dropped")
    let n = 0
    for (const w of [...d.queue]) {
      this.remove(w)
      w.reject(error)
      n++
    }
    if (options.running) {
      for (const r of this.running.values()) {
        if (r.device === d && !r.controller.signal.aborted) {
          r.controller.abort(error)
          n++
        }
      }
    }
    if (n > 0) {
      this.pump(false)
      this.changed()
    }
    return n
  }

  /**
   * Pauses a role: its waiting requests stay (`wait`) or fail at once, and new ones are refused
   * (`refuse`). Running requests are not touched (see `reclaim`).
   */
  pause(roleId: string, mode: PauseMode = 'wait'): void {
    this.paused.set(roleId, mode)
    if (mode === 'refuse') {
      for (const d of this.devices.values()) {
        if (d.roleId !== roleId) continue
        for (const w of [...d.queue]) {
          this.remove(w)
          w.reject(pausedError(roleId))
        }
      }
    }
    this.pump(false)
    this.changed()
  }

  resume(roleId: string): void {
    if (!this.paused.delete(roleId)) return
    this.pump(false)
    this.changed()
  }

  pausedRoles(): Array<{ role_id: string; mode: PauseMode }> {
    return [...this.paused].map(([role_id, mode]) => ({ role_id, mode }))
  }

  /**
   * Takes the GPU back: aborts the running requests of the devices with the lowest share weight among
   * those running (or the first `count` of them, newest first, so the least work is lost). Their slots free
   * when the caller finishes their leases. Returns the aborted request ids.
   */
  reclaim(options: { count?: number; error?: SharedLLMError } = {}): string[] {
    const live = [...this.running.values()].filter((r) => !r.controller.signal.aborted)
    if (live.length === 0) return []
    const lowest = Math.min(...live.map((r) => r.device.weight))
    let chosen = live.filter((r) => r.device.weight === lowest).sort((a, b) => b.startedAt - a.startedAt)
    if (options.count !== undefined) {
      chosen = live
        .sort((a, b) => a.device.weight - b.device.weight || b.startedAt - a.startedAt)
        .slice(0, Math.max(0, options.count))
    }
    const error =
      options.error ??
      new SharedLLMError(
        'UPSTREAM_UNAVAILABLE',
        'the host owner took the GPU back and stopped this request; try again in a minute',
        { details: { reason: 'reclaimed', retry_after_s: 60 } },
      )
    for (const r of chosen) r.controller.abort(error)
    if (chosen.length > 0) this.changed()
    return chosen.map((r) => r.id)
  }

  /** The position (1 = next) and an ETA of every waiting request, in the order they would start. */
  positions(): QueuePosition[] {
    const now = this.clock.now()
    const sim = [...this.devices.values()]
      .filter((d) => d.queue.length > 0 && !this.paused.has(d.roleId))
      .map((d) => ({ d, counter: d.counter, next: 0 }))
    const order: Waiting[] = []
    for (;;) {
      let best: (typeof sim)[number] | undefined
      for (const s of sim) {
        if (s.next >= s.d.queue.length) continue
        if (
          !best ||
          before(s.counter, s.d.queue[s.next] as Waiting, best.counter, best.d.queue[best.next] as Waiting)
        )
          best = s
      }
      if (!best) break
      const w = best.d.queue[best.next++] as Waiting
      order.push(w)
      best.counter += (w.prompt + 2 * (this.outputTokens.get(w.model) ?? 0)) / best.d.weight
    }
    // Paused roles' requests come after everyone else's, in arrival order.
    const pausedWaiting = [...this.devices.values()]
      .filter((d) => this.paused.has(d.roleId))
      .flatMap((d) => d.queue)
      .sort((a, b) => a.seq - b.seq)
    let backlog = 0
    let unknown = false
    for (const r of this.running.values()) {
      const s = this.serviceEstimate(r.model)
      if (s === undefined) unknown = true
      else backlog += Math.max(0, s - (now - r.startedAt))
    }
    const out: QueuePosition[] = []
    order.forEach((w, i) => {
      const capacity = Math.max(1, this.capacity(w.model))
      out.push({
        request_id: w.id,
        device_id: w.device.id,
        model: w.model,
        position: i + 1,
        eta_s: unknown ? null : Math.ceil(backlog / capacity / 1000),
        waited_s: (now - w.enqueuedAt) / 1000,
      })
      const s = this.serviceEstimate(w.model)
      if (s === undefined) unknown = true
      else backlog += s
    })
    for (const w of pausedWaiting) {
      out.push({
        request_id: w.id,
        device_id: w.device.id,
        model: w.model,
        position: out.length + 1,
        eta_s: null,
        waited_s: (now - w.enqueuedAt) / 1000,
      })
    }
    return out
  }

  /**
   * The waiting requests whose position or ETA changed since the last call (all of them the first time):
   * what the gateway sends as `queue_position`, so a device hears only about changes.
   */
  changedPositions(): QueuePosition[] {
    const now = this.positions()
    const seen = new Map<string, string>()
    const out: QueuePosition[] = []
    for (const p of now) {
      const key = `${p.position}:${p.eta_s}`
      seen.set(p.request_id, key)
      if (this.published.get(p.request_id) !== key) out.push(p)
    }
    this.published = seen
    return out
  }

  /** Everything the dashboard and /metrics show. */
  snapshot(): QueueSnapshot {
    const now = this.clock.now()
    const positions = new Map(this.positions().map((p) => [p.request_id, p]))
    const loaded = this.loadedSet()
    const models = new Set<string>([...this.modelRunning.keys()])
    for (const d of this.devices.values()) for (const w of d.queue) models.add(w.model)
    return {
      at: now,
      devices: [...this.devices.values()].map((d) => ({
        device_id: d.id,
        role_id: d.roleId,
        share_weight: d.weight,
        vtc_counter: d.counter,
        waiting: d.queue.length,
        running: d.running,
        oldest_wait_s: d.queue[0] ? (now - d.queue[0].enqueuedAt) / 1000 : null,
      })),
      waiting: [...this.devices.values()]
        .flatMap((d) => d.queue)
        .map((w) => positions.get(w.id) as QueuePosition)
        .sort((a, b) => a.position - b.position),
      running: [...this.running.values()].map((r) => ({
        request_id: r.id,
        device_id: r.device.id,
        model: r.model,
        running_s: (now - r.startedAt) / 1000,
        reclaimed: r.controller.signal.aborted,
      })),
      models: [...models].sort().map((model) => ({
        model,
        running: this.modelRunning.get(model) ?? 0,
        capacity: this.capacity(model),
        loaded: loaded.has(model),
        service_s: this.serviceMs.has(model) ? (this.serviceMs.get(model) as number) / 1000 : null,
      })),
      paused_roles: this.pausedRoles(),
    }
  }

  /** Requests waiting per model (pooling ranks hosts by it and reports it to peers). */
  depthByModel(): Record<string, number> {
    const depth: Record<string, number> = {}
    for (const d of this.devices.values()) for (const w of d.queue) depth[w.model] = (depth[w.model] ?? 0) + 1
    return depth
  }

  /**
   * How long a request for `model` arriving now would wait before it starts, in ms (pooling compares it with
   * a peer's): 0 while a slot is free and nobody waits for the model; else the work ahead of it (what is left
   * of the running requests' service time, plus one service time per request waiting, paused roles aside,
   * as they go after it) over the model's capacity. The service time is the model's EWMA (the mean of the
   * others for a model never timed); with none, the longest a running request has run so far (its service
   * time is at least that). undefined: nothing to estimate from.
   */
  expectedWaitMs(model: string): number | undefined {
    const now = this.clock.now()
    let waiting = 0
    for (const d of this.devices.values()) {
      if (this.paused.has(d.roleId)) continue
      for (const w of d.queue) if (w.model === model) waiting++
    }
    const running = [...this.running.values()].filter((r) => r.model === model && !r.finished)
    const capacity = this.capacity(model)
    if (waiting === 0 && running.length < capacity) return 0
    let service = this.serviceEstimate(model)
    if (service === undefined) {
      for (const r of running) service = Math.max(service ?? 0, now - r.startedAt)
      if (service === undefined || service <= 0) return undefined
    }
    let residual = 0
    for (const r of running) residual += Math.max(0, service - (now - r.startedAt))
    return Math.round((residual + waiting * service) / capacity)
  }

  /** A request's service time for `model` here (its EWMA, else the mean of the others), ms; undefined: none. */
  serviceTimeMs(model: string): number | undefined {
    return this.serviceEstimate(model)
  }

  /** `expectedWaitMs` of every model that has requests running or waiting (what peers are told). */
  waitByModel(): Record<string, number> {
    const models = new Set<string>(this.modelRunning.keys())
    for (const d of this.devices.values()) for (const w of d.queue) models.add(w.model)
    const out: Record<string, number> = {}
    for (const m of models) {
      const ms = this.expectedWaitMs(m)
      if (ms !== undefined) out[m] = ms
    }
    return out
  }

  /** Queue waits by role (seconds) for sharedllm_queue_wait_seconds. */
  waitHistograms(): Array<{ role_id: string; buckets: number[]; sum: number; count: number }> {
    return [...this.waits].map(([role_id, h]) => ({
      role_id,
      buckets: [...h.counts],
      sum: h.sum,
      count: h.count,
    }))
  }

  /** Whether a request with this id is waiting or running. */
  has(id: string): boolean {
    return this.ids.has(id)
  }

  /** The device's counter now (weighted tokens), for tests and the dashboard. */
  counter(deviceId: string): number | undefined {
    return this.devices.get(deviceId)?.counter
  }

  /** Tokens served to the device (exact where known), not divided by its weight. */
  served(deviceId: string): number {
    return this.devices.get(deviceId)?.served ?? 0
  }

  /** Re-evaluates the queue; call when loaded models or capacity change outside the scheduler. */
  poke(): void {
    this.pump(true)
  }

  // ---- internals ----

  private device(id: string, limits: QueueLimits): DeviceState {
    let d = this.devices.get(id)
    if (!d) {
      d = {
        id,
        roleId: limits.role_id,
        weight: limits.share_weight,
        maxConcurrent: limits.max_concurrent,
        counter: 0,
        queue: [],
        running: 0,
        served: 0,
      }
      this.devices.set(id, d)
    }
    // The role's current values win: an owner's change applies from the device's next request.
    d.roleId = limits.role_id
    d.weight = limits.share_weight
    d.maxConcurrent = limits.max_concurrent
    return d
  }

  /** VTC's lift: a device that becomes backlogged starts no lower than the backlogged ones. */
  private lift(d: DeviceState): void {
    let min: number | undefined
    for (const o of this.devices.values()) {
      if (o === d || o.queue.length === 0) continue
      if (min === undefined || o.counter < min) min = o.counter
    }
    d.counter = Math.max(d.counter, min ?? this.lastLeftCounter)
  }

  private capacity(model: string): number {
    const c = this.options.capacity(model)
    return Number.isFinite(c) && c >= 1 ? Math.floor(c) : 1
  }

  private loadedSet(): Set<string> {
    const set = new Set<string>(this.options.loadedModels?.() ?? [])
    for (const [m, n] of this.modelRunning) if (n > 0) set.add(m)
    return set
  }

  private pick(): Waiting | undefined {
    const now = this.clock.now()
    const switchWait = this.options.modelSwitchWaitMs?.() ?? 20_000
    const loaded = this.loadedSet()
    const heads: Waiting[] = []
    for (const d of this.devices.values()) {
      const h = d.queue[0]
      if (h && !this.paused.has(d.roleId)) heads.push(h)
    }
    if (heads.length === 0) return undefined
    const localWork = this.running.size > 0 || heads.some((h) => loaded.has(h.model))
    this.heldUntil = undefined
    let aged: Waiting | undefined
    let best: Waiting | undefined
    for (const h of heads) {
      const d = h.device
      if (d.running >= d.maxConcurrent) continue
      if ((this.modelRunning.get(h.model) ?? 0) >= this.capacity(h.model)) continue
      const local = loaded.has(h.model) || (this.options.canLoadAlongside?.(h.model) ?? false)
      const isAged = now - h.enqueuedAt >= switchWait
      if (!local) {
        // A switch makes Ollama evict a loaded model: it waits while loaded models have work, unless aged.
        if (isAged) {
          if (!aged || before(d.counter, h, aged.device.counter, aged)) aged = h
          continue
        }
        if (localWork) {
          const until = h.enqueuedAt + switchWait
          if (this.heldUntil === undefined || until < this.heldUntil) this.heldUntil = until
          continue
        }
      }
      if (!best || before(d.counter, h, best.device.counter, best)) best = h
    }
    return aged ?? best
  }

  private pump(notify: boolean): void {
    if (this.pumping) return
    this.pumping = true
    let any = false
    try {
      for (let w = this.pick(); w; w = this.pick()) {
        this.dispatch(w)
        any = true
      }
    } finally {
      this.pumping = false
    }
    this.armAgingTimer()
    if (any && notify) this.changed()
  }

  /** Without this a held head would wait for the next unrelated event, not just the switch wait. */
  private armAgingTimer(): void {
    if (this.agingTimer !== undefined) {
      this.clock.clearTimer(this.agingTimer)
      this.agingTimer = undefined
    }
    if (this.heldUntil === undefined || this.closed) return
    this.agingTimer = this.clock.setTimer(
      () => {
        this.agingTimer = undefined
        this.pump(true)
      },
      Math.max(0, this.heldUntil - this.clock.now()),
    )
  }

  private dispatch(w: Waiting): void {
    const d = w.device
    const now = this.clock.now()
    // Charged before it leaves the queue, so a device that leaves the backlog hands on its real counter.
    d.counter += w.prompt / d.weight
    d.served += w.prompt
    this.remove(w)
    d.running++
    this.modelRunning.set(w.model, (this.modelRunning.get(w.model) ?? 0) + 1)
    const waitedMs = now - w.enqueuedAt
    this.observeWait(d.roleId, waitedMs / 1000)
    const r: Running = {
      id: w.id,
      device: d,
      model: w.model,
      startedAt: now,
      prompt: w.prompt,
      streamed: 0,
      controller: new AbortController(),
      finished: false,
    }
    this.running.set(r.id, r)
    this.ids.add(r.id)
    const lease: Lease = {
      id: r.id,
      device_id: d.id,
      model: r.model,
      waited_ms: waitedMs,
      signal: r.controller.signal,
      output: (tokens) => {
        if (r.finished || !Number.isFinite(tokens) || tokens <= 0) return
        r.streamed += tokens
        d.counter += (2 * tokens) / d.weight
        d.served += tokens
      },
      finish: (exact = {}) => this.finish(r, exact),
    }
    w.resolve(lease)
  }

  private finish(r: Running, exact: ExactCounts): void {
    if (r.finished) return
    r.finished = true
    const d = r.device
    const p = exact.prompt_eval_count
    if (typeof p === 'number' && Number.isFinite(p) && p >= 0) {
      d.counter += (p - r.prompt) / d.weight
      d.served += p - r.prompt
    }
    const e = exact.eval_count
    let output = r.streamed
    if (typeof e === 'number' && Number.isFinite(e) && e >= 0) {
      d.counter += (2 * (e - r.streamed)) / d.weight
      d.served += e - r.streamed
      output = e
    }
    if (!r.controller.signal.aborted) {
      // Only whole answers teach the estimates; a reclaimed or dropped request ended early.
      const duration = this.clock.now() - r.startedAt
      this.serviceMs.set(r.model, ewma(this.serviceMs.get(r.model), duration))
      this.outputTokens.set(r.model, ewma(this.outputTokens.get(r.model), output))
    }
    d.running--
    const n = (this.modelRunning.get(r.model) ?? 1) - 1
    if (n <= 0) this.modelRunning.delete(r.model)
    else this.modelRunning.set(r.model, n)
    this.running.delete(r.id)
    this.ids.delete(r.id)
    this.pump(false)
    this.changed()
  }

  private remove(w: Waiting): void {
    const q = w.device.queue
    const i = q.indexOf(w)
    if (i < 0) return
    q.splice(i, 1)
    this.ids.delete(w.id)
    if (w.timer !== undefined) this.clock.clearTimer(w.timer)
    w.offAbort?.()
    // Leaving the backlog: the next device to become backlogged with none waiting starts from here.
    if (q.length === 0) this.lastLeftCounter = w.device.counter
  }

  private cancelWaiting(w: Waiting, err: SharedLLMError): void {
    if (!w.device.queue.includes(w)) return
    this.remove(w)
    w.reject(err)
    this.pump(false)
    this.changed()
  }

  private expire(w: Waiting): void {
    if (!w.device.queue.includes(w)) return
    const eta = this.positions().find((p) => p.request_id === w.id)?.eta_s ?? null
    const retry = Math.max(1, eta ?? Math.ceil(w.maxWaitMs / 1000 / 4))
    const paused = this.paused.has(w.device.roleId)
    this.remove(w)
    w.reject(
      new SharedLLMError(
        'UPSTREAM_UNAVAILABLE',
        `waited ${Math.round(w.maxWaitMs / 1000)} s in the queue, the longest this device's role allows (max_wait_s)${
          paused ? ' while the host owner paused its role' : ''
        }; the host is busy: try again in ${retry} s`,
        { details: { reason: 'queue_wait', max_wait_s: w.maxWaitMs / 1000, retry_after_s: retry } },
      ),
    )
    this.pump(false)
    this.changed()
  }

  private retryAfterS(d: DeviceState): number {
    const head = d.queue[0]
    const eta = head ? this.positions().find((p) => p.request_id === head.id)?.eta_s : undefined
    return Math.max(1, eta ?? 1)
  }

  private serviceEstimate(model: string): number | undefined {
    const own = this.serviceMs.get(model)
    if (own !== undefined) return own
    // A model never timed: the mean of the others, else unknown.
    if (this.serviceMs.size === 0) return undefined
    let sum = 0
    for (const v of this.serviceMs.values()) sum += v
    return sum / this.serviceMs.size
  }

  private observeWait(roleId: string, seconds: number): void {
    let h = this.waits.get(roleId)
    if (!h) {
      h = { counts: QUEUE_WAIT_BUCKETS_S.map(() => 0), sum: 0, count: 0 }
      this.waits.set(roleId, h)
    }
    QUEUE_WAIT_BUCKETS_S.forEach((b, i) => {
      if (seconds <= b) (h as Histogram).counts[i] = ((h as Histogram).counts[i] ?? 0) + 1
    })
    h.sum += seconds
    h.count++
  }

  private changed(): void {
    try {
      this.options.onChange?.()
    } catch {
      // A listener's failure is the listener's; the queue's state is already consistent.
    }
  }
}

/** Smaller counter first; on a tie the older head (arrival order). */
function before(ca: number, a: Waiting, cb: number, b: Waiting): boolean {
  if (ca !== cb) return ca < cb
  return a.enqueuedAt !== b.enqueuedAt ? a.enqueuedAt < b.enqueuedAt : a.seq < b.seq
}

function ewma(prev: number | undefined, value: number): number {
  return prev === undefined ? value : EWMA_ALPHA * value + (1 - EWMA_ALPHA) * prev
}

function checkLimits(l: QueueLimits): QueueLimits {
  const whole = (v: number, min: number) => Number.isInteger(v) && v >= min
  if (
    !whole(l.share_weight, 1) ||
    !whole(l.max_concurrent, 1) ||
    !whole(l.max_queued, 0) ||
    !(l.max_wait_s > 0)
  ) {
    throw new SharedLLMError('INTERNAL', `invalid queue limits for role '${l.role_id}'`)
  }
  return l
}

function cancelled(id: string): SharedLLMError {
  return new SharedLLMError('CANCELLED', `request ${id} was cancelled while it waited in the queue`)
}

function pausedError(roleId: string): SharedLLMError {
  return new SharedLLMError(
    'UPSTREAM_UNAVAILABLE',
    `the host owner paused the queue for this device's role (${roleId}); try again later`,
    { details: { reason: 'paused', role_id: roleId, retry_after_s: 60 } },
  )
}

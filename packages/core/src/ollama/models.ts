import { errorMessage, isSharedLLMError, SharedLLMError } from '../errors'
import type { EventBus } from '../events'
import type { Logger } from '../logger'
import type { ModelInfo, PullProgress, RunningModel } from '../protocol/types'
import type { OllamaClient } from './client'
import { canonicalModelName, sameModel, validateModelName } from './names'
import { ProgressFeed, PullAggregate } from './pull'
import type { ShowResponse } from './wire'

export interface PullHandle extends AsyncIterable<PullProgress> {
  name: string
  /** Resolves when Ollama says `success`; rejects with SharedLLMError PULL_FAILED or CANCELLED. */
  done: Promise<void>
  cancel(): void
}

export interface ModelManagerOptions {
  client: OllamaClient
  bus: EventBus
  log: Logger
  /** Cadence of the running-models poll. @default 5000 */
  pollIntervalMs?: number
  /** Least time between two `model_pull_progress` events of one pull; status changes always emit. @default 250 */
  progressIntervalMs?: number
  /** Whether a model is in use by an open request (the gateway knows); delete refuses it unless forced. */
  inUse?: (name: string) => boolean
}

interface ActivePull {
  name: string
  aggregate: PullAggregate
  feed: ProgressFeed
  abort: AbortController
  done: Promise<void>
}

/** Models on the Ollama host: list, running, pull (shared per name, cancellable), guarded delete. */
export class ModelManager {
  private readonly o: ModelManagerOptions
  private readonly log: Logger
  private readonly pulls = new Map<string, ActivePull>()
  private pollTimer: NodeJS.Timeout | null = null
  private lastRunning: RunningModel[] = []
  private lastRunningKey: string | null = null
  private polling = false

  constructor(o: ModelManagerOptions) {
    this.o = o
    this.log = o.log.child({ component: 'models' })
  }

  list(): Promise<ModelInfo[]> {
    return this.o.client.tags()
  }

  running(): Promise<RunningModel[]> {
    return this.o.client.ps()
  }

  /** The running models as of the last poll (for snapshots), without asking Ollama. */
  lastKnownRunning(): RunningModel[] {
    return [...this.lastRunning]
  }

  async show(name: string, opts: { verbose?: boolean } = {}): Promise<ShowResponse> {
    return this.o.client.show(validateModelName(name), opts)
  }

  /** Starts a pull, or joins the one already running for this model. Throws VALIDATION synchronously. */
  pull(name: string): PullHandle {
    const model = validateModelName(name)
    const key = canonicalModelName(model)
    const active = this.pulls.get(key) ?? this.begin(model, key)
    return {
      name: active.name,
      done: active.done,
      cancel: () => active.abort.abort(),
      [Symbol.asyncIterator]: () => active.feed.iterate(active.aggregate.progress()),
    }
  }

  activePulls(): PullProgress[] {
    return [...this.pulls.values()].map((p) => p.aggregate.progress())
  }

  cancelPull(name: string): boolean {
    const active = this.pulls.get(canonicalModelName(validateModelName(name)))
    if (!active) return false
    active.abort.abort()
    return true
  }

  private begin(name: string, key: string): ActivePull {
    const aggregate = new PullAggregate(name)
    const feed = new ProgressFeed()
    const abort = new AbortController()
    const entry = { name, aggregate, feed, abort } as ActivePull
    entry.done = this.run(entry)
    // Callers that only iterate must not cause an unhandled rejection.
    entry.done.catch(() => {})
    this.pulls.set(key, entry)
    return entry
  }

  private async run(p: ActivePull): Promise<void> {
    const { bus } = this.o
    const minGap = this.o.progressIntervalMs ?? 250
    let lastEmit = 0
    let lastStatus = ''
    let succeeded = false
    try {
      for await (const line of this.o.client.pull(p.name, p.abort.signal)) {
        const progress = p.aggregate.add(line)
        if (line.status === 'success') succeeded = true
        p.feed.publish(progress)
        const now = Date.now()
        if (progress.status !== lastStatus || now - lastEmit >= minGap || succeeded) {
          lastEmit = now
          lastStatus = progress.status
          bus.emit('model_pull_progress', progress)
        }
      }
      if (!succeeded) {
        throw new SharedLLMError('PULL_FAILED', `The pull of ${p.name} ended before Ollama reported success`)
      }
    } catch (err) {
      const error = this.pullError(p, err)
      const upstream = error.details?.upstream
      this.pulls.delete(canonicalModelName(p.name))
      bus.emit('model_pull_failed', {
        name: p.name,
        error: typeof upstream === 'string' ? upstream : error.message,
      })
      this.log.warn({ model: p.name, err: error.message }, 'pull failed')
      p.feed.end(error)
      throw error
    }
    this.pulls.delete(canonicalModelName(p.name))
    p.feed.end()
    bus.emit('model_pulled', { name: p.name })
    this.refreshList()
  }

  private pullError(p: ActivePull, err: unknown): SharedLLMError {
    if (p.abort.signal.aborted) {
      return new SharedLLMError('CANCELLED', `The pull of ${p.name} was cancelled`, { cause: err })
    }
    if (isSharedLLMError(err, 'PULL_FAILED')) return err
    const upstream = isSharedLLMError(err) ? err.details?.upstream : undefined
    return new SharedLLMError('PULL_FAILED', `Pulling ${p.name} failed: ${errorMessage(err)}`, {
      cause: err,
      details: { model: p.name, ...(typeof upstream === 'string' ? { upstream } : {}) },
    })
  }

  /**
   * Deletes a model. Refuses (MODEL_IN_USE) one that is loaded or in use unless `force`, which unloads it
   * first; refuses (CONFLICT) one that is being pulled.
   */
  async delete(name: string, opts: { force?: boolean } = {}): Promise<void> {
    const model = validateModelName(name)
    if (this.pulls.has(canonicalModelName(model))) {
      throw new SharedLLMError('CONFLICT', `${model} is being pulled; cancel the pull before deleting it`)
    }
    const loaded = (await this.o.client.ps()).some(
      (m) => sameModel(m.name, model) || sameModel(m.model, model),
    )
    const busy = this.o.inUse?.(model) === true
    if ((loaded || busy) && !opts.force) {
      throw new SharedLLMError(
        'MODEL_IN_USE',
        `${model} is ${loaded ? 'loaded in memory' : 'in use by an open request'}; wait until it is unloaded or delete with force`,
        { details: { model, loaded, in_use: busy } },
      )
    }
    if (loaded) await this.o.client.unload(model)
    await this.o.client.delete(model)
    this.log.info({ model, forced: opts.force === true }, 'model deleted')
    this.o.bus.emit('model_deleted', { name: model })
    this.refreshList()
  }

  /** Polls the running models and emits `models_running` when the set changes. Never throws. */
  start(): void {
    if (this.pollTimer) return
    const tick = async () => {
      if (this.polling) return
      this.polling = true
      try {
        const models = await this.o.client.ps()
        const key = JSON.stringify(models.map((m) => [m.name, m.size, m.size_vram, m.context_length]).sort())
        if (key !== this.lastRunningKey) {
          this.lastRunningKey = key
          this.lastRunning = models
          this.o.bus.emit('models_running', { models })
        }
      } catch (err) {
        this.log.debug({ err: errorMessage(err) }, 'running-models poll failed')
      } finally {
        this.polling = false
      }
    }
    void tick()
    this.pollTimer = setInterval(tick, this.o.pollIntervalMs ?? 5000)
    this.pollTimer.unref()
  }

  /** Stops polling and cancels every pull in progress. */
  stop(): void {
    if (this.pollTimer) clearInterval(this.pollTimer)
    this.pollTimer = null
    for (const p of this.pulls.values()) p.abort.abort()
  }

  private refreshList(): void {
    this.o.client
      .tags()
      .then((models) => this.o.bus.emit('models_changed', { models }))
      .catch((err) => this.log.debug({ err: errorMessage(err) }, 'model list refresh failed'))
  }
}

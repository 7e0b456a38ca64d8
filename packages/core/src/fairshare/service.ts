import { SINGLE_SEQUENCE_FAMILIES } from '../gateway/fit'
import { normaliseModelName } from '../gateway/patterns'
import type { EventBus } from '../events'
import type { Logger } from '../logger'
import { type Clock, systemClock } from './clock'
import { FairScheduler } from './scheduler'

/**
 * Model families Ollama runs one request at a time whatever OLLAMA_NUM_PARALLEL says (server/sched.go
 * `load`): the same list the fit estimate loads with one sequence.
 */
export const SERIAL_FAMILIES: ReadonlySet<string> = SINGLE_SEQUENCE_FAMILIES

/** OLLAMA_NUM_PARALLEL as Ollama reads it (envconfig/config.go `Uint`, default 1; sched.go takes max(n, 1)). */
export function numParallelFromEnv(value: string | undefined): number {
  if (value === undefined || value.trim() === '') return 1
  const n = Number(value.trim())
  return Number.isInteger(n) && n >= 1 ? n : 1
}

/** What the queue needs to know about a model to know how many of its requests Ollama runs at once. */
export interface ModelTraits {
  /** Ollama's `capabilities` include `completion` (embedding-only models run one at a time). */
  completion: boolean
  /** `details.family` of `/api/show` (Ollama's `Config.ModelFamily`). */
  family: string
  /** Its size on disk (`/api/tags`), a floor for the memory it needs when loaded. */
  sizeBytes?: number
}

export interface QueueServiceOptions {
  bus: EventBus
  log: Logger
  clock?: Clock
  /** OLLAMA_NUM_PARALLEL of the owned Ollama, or the `ollama_num_parallel` setting for an attached one. */
  numParallel: () => number
  /** The `model_switch_wait_s` setting, in seconds. */
  modelSwitchWaitS: () => number
  /** Reads a model's traits (from `/api/show`); until it answers, Ollama's setting applies. */
  traits?: (model: string) => Promise<ModelTraits | undefined>
  /** The host's free memory in MiB, for whether a model would load beside the loaded ones. */
  freeMb?: () => number | undefined
}

/**
 * The host's fair-share queue: one `FairScheduler` whose capacity per model follows Ollama's rules, whose
 * loaded models follow the `models_running` poll, and which publishes `queue_position` events to the
 * devices that wait (coalesced to one publication per tick, only positions that changed).
 */
export class QueueService {
  readonly scheduler: FairScheduler
  private loaded = new Set<string>()
  private readonly traits = new Map<string, ModelTraits | 'pending' | { unknownUntil: number }>()
  private publishing = false
  private readonly off: Array<() => void> = []

  constructor(private readonly o: QueueServiceOptions) {
    this.scheduler = new FairScheduler({
      clock: o.clock ?? systemClock,
      capacity: (model) => this.capacity(model),
      loadedModels: () => this.loaded,
      modelSwitchWaitMs: () => o.modelSwitchWaitS() * 1000,
      canLoadAlongside: (model) => this.fitsAlongside(model),
      onChange: () => this.schedulePublish(),
    })
    this.off.push(
      o.bus.on('models_running', ({ models }) => {
        this.loaded = new Set(models.map((m) => normaliseModelName(m.name)))
        this.scheduler.poke()
      }),
      // A device whose keys died waits no more: its queued requests fail at once (its running ones are
      // cut by the gateway's open exchanges).
      o.bus.on('device_keys_revoked', ({ device_id }) => {
        this.scheduler.drop(device_id)
      }),
      o.bus.on('setting_changed', ({ key }) => {
        if (key === 'ollama_num_parallel' || key === 'model_switch_wait_s') this.scheduler.poke()
      }),
      o.bus.on('model_pulled', ({ name }) => this.forget(name)),
      o.bus.on('model_deleted', ({ name }) => this.forget(name)),
    )
  }

  /** Requests Ollama runs at once for `model` (sched.go `load`): 1 for embedding models and some families. */
  capacity(model: string): number {
    const t = this.known(model)
    const parallel = Math.max(1, Math.floor(this.o.numParallel()))
    // Not known (asked now, or Ollama could not say): most models complete text, so Ollama's setting applies.
    if (!t) return parallel
    return !t.completion || SERIAL_FAMILIES.has(t.family) ? 1 : parallel
  }

  /**
   * Whether `model` would load without making Ollama evict a loaded one: only a model known to be larger
   * than the free memory is held back for locality (unknown sizes are not: Ollama decides).
   */
  fitsAlongside(model: string): boolean {
    const t = this.known(model)
    const free = this.o.freeMb?.()
    if (!t || t.sizeBytes === undefined || free === undefined) return true
    return t.sizeBytes <= free * 1024 * 1024
  }

  /** Forget what was learnt about a model (pulled again, deleted). */
  forget(model?: string): void {
    if (model === undefined) this.traits.clear()
    else this.traits.delete(normaliseModelName(model))
  }

  close(): void {
    for (const off of this.off.splice(0)) off()
    this.scheduler.close()
  }

  /** The model's traits when known; starts the lookup once (again a minute after one that failed). */
  private known(model: string): ModelTraits | undefined {
    const key = normaliseModelName(model)
    const t = this.traits.get(key)
    if (t === 'pending') return undefined
    if (t === undefined || ('unknownUntil' in t && t.unknownUntil <= Date.now())) {
      this.learn(key)
      return undefined
    }
    return 'unknownUntil' in t ? undefined : t
  }

  private learn(key: string): void {
    if (!this.o.traits) return
    this.traits.set(key, 'pending')
    const unknown = () => this.traits.set(key, { unknownUntil: Date.now() + 60_000 })
    this.o.traits(key).then(
      (t) => {
        if (!t) return unknown()
        this.traits.set(key, t)
        this.scheduler.poke()
      },
      (err: unknown) => {
        unknown()
        this.o.log.debug({ err, model: key }, 'could not read model traits for the queue')
      },
    )
  }

  private schedulePublish(): void {
    if (this.publishing) return
    this.publishing = true
    queueMicrotask(() => {
      this.publishing = false
      try {
        for (const p of this.scheduler.changedPositions()) {
          this.o.bus.emit('queue_position', {
            device_id: p.device_id,
            request_id: p.request_id,
            position: p.position,
            eta_s: p.eta_s,
          })
        }
      } catch (err) {
        this.o.log.warn({ err }, 'publishing queue positions failed')
      }
    })
  }
}

/** Reads ModelTraits from an `/api/show` answer; undefined when it says neither. */
export function traitsFromShow(show: unknown, sizeBytes?: number): ModelTraits | undefined {
  if (!show || typeof show !== 'object') return undefined
  const s = show as { capabilities?: unknown; details?: { family?: unknown } }
  const caps = Array.isArray(s.capabilities) ? s.capabilities.filter((c) => typeof c === 'string') : null
  const family = typeof s.details?.family === 'string' ? s.details.family.toLowerCase() : ''
  // Ollama before capabilities existed: a completion model (embedding models came later).
  return {
    completion: caps === null ? true : caps.includes('completion'),
    family,
    ...(sizeBytes !== undefined && Number.isFinite(sizeBytes) && sizeBytes > 0 ? { sizeBytes } : {}),
  }
}

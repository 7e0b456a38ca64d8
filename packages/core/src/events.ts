import type { EventMap, EventType } from './protocol/events'

export type Listener<K extends EventType> = (payload: EventMap[K]) => void
export type AnyListener = <K extends EventType>(type: K, payload: EventMap[K]) => void

/**
 * Typed synchronous event bus. A throwing listener is reported to `onListenerError` and never breaks the
 * emitter or the other listeners (background loops emit here and must not crash).
 */
export class EventBus {
  private readonly listeners = new Map<EventType, Set<(payload: never) => void>>()
  private readonly anyListeners = new Set<AnyListener>()

  constructor(private readonly onListenerError: (err: unknown, type: EventType) => void = () => {}) {}

  on<K extends EventType>(type: K, listener: Listener<K>): () => void {
    let set = this.listeners.get(type)
    if (!set) {
      set = new Set()
      this.listeners.set(type, set)
    }
    set.add(listener as (payload: never) => void)
    return () => {
      set.delete(listener as (payload: never) => void)
    }
  }

  once<K extends EventType>(type: K, listener: Listener<K>): () => void {
    const off = this.on(type, (payload) => {
      off()
      listener(payload)
    })
    return off
  }

  onAny(listener: AnyListener): () => void {
    this.anyListeners.add(listener)
    return () => {
      this.anyListeners.delete(listener)
    }
  }

  /** Resolves with the next payload of `type` that passes `filter`. */
  waitFor<K extends EventType>(
    type: K,
    filter: (payload: EventMap[K]) => boolean = () => true,
    timeoutMs = 10_000,
  ): Promise<EventMap[K]> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        off()
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${type}`))
      }, timeoutMs)
      const off = this.on(type, (payload) => {
        if (!filter(payload)) return
        clearTimeout(timer)
        off()
        resolve(payload)
      })
    })
  }

  emit<K extends EventType>(type: K, payload: EventMap[K]): void {
    const set = this.listeners.get(type)
    if (set) {
      for (const listener of [...set]) {
        try {
          ;(listener as Listener<K>)(payload)
        } catch (err) {
          this.onListenerError(err, type)
        }
      }
    }
    for (const listener of [...this.anyListeners]) {
      try {
        listener(type, payload)
      } catch (err) {
        this.onListenerError(err, type)
      }
    }
  }

  listenerCount(type?: EventType): number {
    if (type) return (this.listeners.get(type)?.size ?? 0) + this.anyListeners.size
    let n = this.anyListeners.size
    for (const set of this.listeners.values()) n += set.size
    return n
  }

  clear(): void {
    this.listeners.clear()
    this.anyListeners.clear()
  }
}

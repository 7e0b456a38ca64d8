/** Time and timers, injected so the queue and the usage recorder run on a virtual clock in tests. */
export interface Clock {
  now(): number
  setTimer(fn: () => void, ms: number): unknown
  clearTimer(handle: unknown): void
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimer: (fn, ms) => {
    const t = setTimeout(fn, ms)
    t.unref?.()
    return t
  },
  clearTimer: (h) => clearTimeout(h as NodeJS.Timeout),
}

/** A clock that moves only when told to; timers fire in due order during `advance`. */
export class VirtualClock implements Clock {
  private t: number
  private seq = 0
  private readonly timers = new Map<number, { at: number; fn: () => void; seq: number }>()

  constructor(start = 0) {
    this.t = start
  }

  now(): number {
    return this.t
  }

  setTimer(fn: () => void, ms: number): unknown {
    const id = ++this.seq
    this.timers.set(id, { at: this.t + Math.max(0, ms), fn, seq: id })
    return id
  }

  clearTimer(handle: unknown): void {
    this.timers.delete(handle as number)
  }

  /** Moves time forward by `ms`, running each timer that falls due at its own instant. */
  advance(ms: number): void {
    const end = this.t + ms
    for (;;) {
      let next: [number, { at: number; fn: () => void; seq: number }] | undefined
      for (const e of this.timers) {
        if (e[1].at > end) continue
        if (!next || e[1].at < next[1].at || (e[1].at === next[1].at && e[1].seq < next[1].seq)) next = e
      }
      if (!next) break
      this.timers.delete(next[0])
      this.t = Math.max(this.t, next[1].at)
      next[1].fn()
    }
    this.t = end
  }

  /** When the next timer falls due, or undefined when none is pending. */
  nextAt(): number | undefined {
    let at: number | undefined
    for (const e of this.timers.values()) if (at === undefined || e.at < at) at = e.at
    return at
  }

  /** Timers still pending. */
  get pending(): number {
    return this.timers.size
  }
}

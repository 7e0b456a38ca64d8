import type { PullProgress } from '../protocol/types'
import type { RawPullLine } from './wire'

/**
 * Sums progress over layers: completed and total over the distinct digests seen so far. Lines without
 * `completed` (a layer that is starting) keep the layer's last count; a digest never counts twice.
 */
export class PullAggregate {
  private readonly layers = new Map<string, { total: number; completed: number }>()
  private status = ''
  private finished = false

  constructor(readonly name: string) {}

  add(line: RawPullLine): PullProgress {
    if (line.status) this.status = line.status
    if (line.status === 'success') this.finished = true
    if (line.digest !== undefined && line.total !== undefined) {
      const layer = this.layers.get(line.digest) ?? { total: 0, completed: 0 }
      layer.total = line.total
      if (line.completed !== undefined) layer.completed = Math.min(line.completed, line.total)
      this.layers.set(line.digest, layer)
    }
    return this.progress()
  }

  progress(): PullProgress {
    let total = 0
    let completed = 0
    for (const layer of this.layers.values()) {
      total += layer.total
      completed += layer.completed
    }
    let percent: number | null = total > 0 ? Math.floor((completed / total) * 1000) / 10 : null
    if (this.finished) percent = 100
    return { name: this.name, status: this.status, completed, total, percent }
  }
}

/**
 * A single-slot mailbox per subscriber: progress is a snapshot, so a slow reader only ever gets the newest
 * one and memory stays constant however fast Ollama streams.
 */
export class ProgressFeed {
  private readonly subscribers = new Set<Subscriber>()
  private ended: { error?: unknown } | null = null

  publish(p: PullProgress): void {
    for (const s of this.subscribers) s.push(p)
  }

  end(error?: unknown): void {
    this.ended = error === undefined ? {} : { error }
    for (const s of this.subscribers) s.end(this.ended)
    this.subscribers.clear()
  }

  /** An iterator that starts with `initial` (the progress so far) and ends when the pull ends. */
  iterate(initial: PullProgress | null): AsyncIterator<PullProgress> {
    const sub = new Subscriber()
    if (initial) sub.push(initial)
    if (this.ended) sub.end(this.ended)
    else this.subscribers.add(sub)
    return {
      next: () => sub.next(),
      return: async () => {
        this.subscribers.delete(sub)
        sub.end({})
        return { done: true, value: undefined }
      },
    }
  }
}

class Subscriber {
  private latest: PullProgress | null = null
  private ended: { error?: unknown } | null = null
  private waiter: ((r: IteratorResult<PullProgress>) => void) | null = null
  private failer: ((err: unknown) => void) | null = null

  push(p: PullProgress): void {
    if (this.ended) return
    if (this.waiter) {
      const w = this.waiter
      this.waiter = null
      this.failer = null
      w({ done: false, value: p })
    } else {
      this.latest = p
    }
  }

  end(how: { error?: unknown }): void {
    if (this.ended) return
    this.ended = how
    if (this.waiter) {
      const [w, f] = [this.waiter, this.failer]
      this.waiter = null
      this.failer = null
      if (how.error !== undefined) f?.(how.error)
      else w({ done: true, value: undefined })
    }
  }

  next(): Promise<IteratorResult<PullProgress>> {
    if (this.latest) {
      const value = this.latest
      this.latest = null
      return Promise.resolve({ done: false, value })
    }
    if (this.ended) {
      if (this.ended.error !== undefined) {
        const error = this.ended.error
        // Report the failure once; later calls just say done.
        this.ended = {}
        return Promise.reject(error)
      }
      return Promise.resolve({ done: true, value: undefined })
    }
    return new Promise((resolve, reject) => {
      this.waiter = resolve
      this.failer = reject
    })
  }
}

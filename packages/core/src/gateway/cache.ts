/**
 * A value read from Ollama and kept for `ttlMs`, refreshed by one request at a time: every caller that
 * finds it expired while a refresh is in flight awaits that refresh instead of starting its own (32
 * concurrent requests then cost one `/api/tags`, not 32). A failed refresh is not kept.
 */
export class SharedCache<T> {
  private value: { at: number; v: T } | undefined
  private inFlight: Promise<T> | undefined
  private generation = 0

  constructor(
    private readonly load: () => Promise<T>,
    private readonly ttlMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** The cached value while fresh; else the refresh in flight, or a new one. `fresh`: never the cached value. */
  get(opts: { fresh?: boolean } = {}): Promise<T> {
    if (!opts.fresh && this.value && this.now() - this.value.at < this.ttlMs) {
      return Promise.resolve(this.value.v)
    }
    return this.refresh()
  }

  /** The last value read, however old, without asking Ollama. */
  peek(): T | undefined {
    return this.value?.v
  }

  /** Stores a value that arrived another way (the running-models poll). */
  set(v: T): void {
    this.generation++
    this.value = { at: this.now(), v }
  }

  /** Forgets the value; a refresh already in flight is not joined by later callers. */
  invalidate(): void {
    this.generation++
    this.value = undefined
    this.inFlight = undefined
  }

  private refresh(): Promise<T> {
    if (this.inFlight) return this.inFlight
    const generation = this.generation
    const p = this.load().then((v) => {
      // A value read before an invalidation is handed to its waiters but not kept.
      if (generation === this.generation) this.value = { at: this.now(), v }
      return v
    })
    this.inFlight = p
    const clear = () => {
      if (this.inFlight === p) this.inFlight = undefined
    }
    p.then(clear, clear)
    return p
  }
}

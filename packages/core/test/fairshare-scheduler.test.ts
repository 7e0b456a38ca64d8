import fc from 'fast-check'
import { describe, expect, test } from 'vitest'
import {
  estimatePromptTokens,
  FairScheduler,
  type FairSchedulerOptions,
  IMAGE_TOKENS,
  type Lease,
  type QueueLimits,
  queueLimitsOf,
  renderQueueMetrics,
  SharedLLMError,
  VirtualClock,
} from '../src/index'

const limits = (over: Partial<QueueLimits> = {}): QueueLimits => ({
  role_id: 'role-user',
  share_weight: 1,
  max_concurrent: 1,
  max_queued: 1000,
  max_wait_s: 3600,
  ...over,
})
const GUEST = limits({ role_id: 'role-guest', share_weight: 1 })
const USER = limits({ role_id: 'role-user', share_weight: 2 })
const ADMIN = limits({ role_id: 'role-admin', share_weight: 4 })

interface Job {
  model?: string
  prompt?: number
  output?: number
  /** Finishes by itself this long after it starts; undefined: the test finishes it. */
  ms?: number
  limits?: QueueLimits
  signal?: AbortSignal
}

const flush = () => new Promise<void>((r) => setImmediate(r))

/** The scheduler on a virtual clock, with a stand-in for Ollama that serves each released job for `ms`. */
class Sim {
  readonly clock = new VirtualClock(1_000_000)
  readonly loaded = new Set<string>(['a'])
  readonly cap = new Map<string, number>()
  switchWaitMs = 20_000
  readonly started: Array<{ id: string; device: string; model: string; at: number }> = []
  readonly finished: Array<{ id: string; device: string; at: number }> = []
  readonly errors = new Map<string, SharedLLMError>()
  readonly leases = new Map<string, Lease>()
  readonly sched: FairScheduler
  changes = 0

  constructor(over: Partial<FairSchedulerOptions> = {}) {
    this.sched = new FairScheduler({
      clock: this.clock,
      capacity: (m) => this.cap.get(m) ?? 1,
      loadedModels: () => this.loaded,
      modelSwitchWaitMs: () => this.switchWaitMs,
      onChange: () => this.changes++,
      ...over,
    })
  }

  submit(id: string, device: string, job: Job = {}) {
    const prompt = job.prompt ?? 10
    const output = job.output ?? 10
    const ticket = this.sched.submit({
      id,
      device_id: device,
      model: job.model ?? 'a',
      limits: job.limits ?? GUEST,
      prompt_tokens: prompt,
      signal: job.signal,
    })
    ticket.granted.then(
      (lease) => {
        this.started.push({ id, device, model: lease.model, at: this.clock.now() })
        this.leases.set(id, lease)
        if (job.ms !== undefined) {
          this.clock.setTimer(() => {
            lease.output(output)
            lease.finish({ prompt_eval_count: prompt, eval_count: output })
            this.finished.push({ id, device, at: this.clock.now() })
          }, job.ms)
        }
      },
      (err: SharedLLMError) => this.errors.set(id, err),
    )
    return ticket
  }

  /** Moves the clock timer by timer, letting promise callbacks run at each instant. */
  async advance(ms: number) {
    const end = this.clock.now() + ms
    await flush()
    for (let at = this.clock.nextAt(); at !== undefined && at <= end; at = this.clock.nextAt()) {
      this.clock.advance(at - this.clock.now())
      await flush()
    }
    this.clock.advance(end - this.clock.now())
    await flush()
  }

  order() {
    return this.started.map((s) => s.id)
  }
}

function refusal(fn: () => unknown): SharedLLMError {
  try {
    fn()
  } catch (err) {
    if (err instanceof SharedLLMError) return err
    throw err
  }
  throw new Error('expected a refusal')
}

describe('VTC ordering', () => {
  test('two equal devices alternate; ties go to the oldest head', async () => {
    const s = new Sim()
    for (let i = 0; i < 3; i++) s.submit(`a${i}`, 'A', { ms: 1000 })
    for (let i = 0; i < 3; i++) s.submit(`b${i}`, 'B', { ms: 1000 })
    await s.advance(10_000)
    expect(s.order()).toEqual(['a0', 'b0', 'a1', 'b1', 'a2', 'b2'])
  })

  test('the smallest counter goes next, counting output twice and input once', async () => {
    const s = new Sim()
    s.submit('busy', 'A', { prompt: 0, output: 0 })
    await s.advance(0)
    // A's first job costs 100 output tokens (200), B's costs 150 prompt tokens (150).
    s.submit('a1', 'A', { prompt: 0, output: 100, ms: 1000 })
    s.submit('b1', 'B', { prompt: 150, output: 0, ms: 1000 })
    s.submit('a2', 'A', { prompt: 10, output: 0, ms: 1000 })
    s.submit('b2', 'B', { prompt: 10, output: 0, ms: 1000 })
    s.leases.get('busy')?.finish({ prompt_eval_count: 0, eval_count: 0 })
    await s.advance(10_000)
    // a1 (older head, tie at 0), then b1 (B at 0 < A at 200), then b2 (B at 150 < 200), then a2.
    expect(s.order()).toEqual(['busy', 'a1', 'b1', 'b2', 'a2'])
    expect(s.sched.counter('A')).toBe(210)
    expect(s.sched.counter('B')).toBe(160)
  })

  test('weights: an admin (4) gets four times the tokens of a guest (1) while both wait', async () => {
    const s = new Sim()
    for (let i = 0; i < 40; i++)
      s.submit(`g${i}`, 'guest', { limits: GUEST, prompt: 50, output: 50, ms: 100 })
    for (let i = 0; i < 40; i++)
      s.submit(`o${i}`, 'owner', { limits: ADMIN, prompt: 50, output: 50, ms: 100 })
    await s.advance(2500) // 25 jobs served, both still backlogged
    const first = s.started.slice(0, 25)
    const owner = first.filter((x) => x.device === 'owner').length
    expect(owner).toBeGreaterThanOrEqual(19)
    expect(owner).toBeLessThanOrEqual(21)
  })

  test('lift: a device that arrives late does not get a burst for the time it was idle', async () => {
    const s = new Sim()
    for (let i = 0; i < 10; i++) s.submit(`a${i}`, 'A', { ms: 1000 })
    await s.advance(5500) // A has been served 6 jobs (counter 6 × 30)
    for (let i = 0; i < 4; i++) s.submit(`b${i}`, 'B', { ms: 1000 })
    await s.advance(8000)
    const after = s.started.filter((x) => x.at > s.clock.now() - 8000 - 1).map((x) => x.device)
    // B is lifted to A's counter: they alternate instead of B taking four in a row.
    expect(after.slice(0, 6)).toEqual(['B', 'A', 'B', 'A', 'B', 'A'])
  })

  test('lift when nobody waits: a device returning after idling starts at the last counter', async () => {
    const s = new Sim()
    s.submit('a0', 'A', { prompt: 500, output: 0, ms: 100 })
    await s.advance(1000)
    expect(s.sched.counter('A')).toBe(500)
    s.submit('b0', 'B', { prompt: 1, output: 0, ms: 100 })
    await s.advance(0)
    // B became backlogged with nobody waiting: lifted to the last device that left the backlog (A at 500).
    expect(s.sched.counter('B')).toBe(501)
  })
})

describe('exact counts', () => {
  test('the estimate is replaced by prompt_eval_count and the streamed chunks by eval_count', async () => {
    const s = new Sim()
    s.submit('x', 'A', { prompt: 100, limits: USER })
    await s.advance(0)
    const lease = s.leases.get('x') as Lease
    expect(s.sched.counter('A')).toBe(50) // 100 estimated prompt tokens / weight 2
    lease.output(1)
    lease.output(1)
    lease.output(1)
    expect(s.sched.counter('A')).toBe(53)
    lease.finish({ prompt_eval_count: 80, eval_count: 10 })
    expect(s.sched.counter('A')).toBe((80 + 2 * 10) / 2)
    lease.finish({ prompt_eval_count: 1000, eval_count: 1000 })
    lease.output(5)
    expect(s.sched.counter('A')).toBe(50)
    expect(s.sched.served('A')).toBe(90)
  })
})

describe('capacity and caps', () => {
  test('no more than the model capacity runs at once, and each device at most max_concurrent', async () => {
    const s = new Sim()
    s.cap.set('a', 2)
    const two = limits({ max_concurrent: 2 })
    for (let i = 0; i < 5; i++) s.submit(`a${i}`, 'A', { limits: two })
    for (let i = 0; i < 5; i++) s.submit(`b${i}`, 'B', { limits: limits({ max_concurrent: 1 }) })
    await s.advance(0)
    expect(s.order()).toEqual(['a0', 'a1'])
    s.cap.set('a', 3)
    s.sched.poke()
    await s.advance(0)
    expect(s.order()).toEqual(['a0', 'a1', 'b0'])
    s.sched.poke()
    await s.advance(0)
    expect(s.sched.snapshot().models).toEqual([
      { model: 'a', running: 3, capacity: 3, loaded: true, service_s: null },
    ])
  })

  test('past max_queued: a 429 with Retry-After, and nothing changes', async () => {
    const s = new Sim()
    const lim = limits({ max_queued: 2 })
    s.submit('run', 'A', { limits: lim })
    s.submit('w1', 'A', { limits: lim })
    s.submit('w2', 'A', { limits: lim })
    await s.advance(0)
    const before = s.sched.snapshot()
    const err = refusal(() => s.submit('w3', 'A', { limits: lim }))
    expect(err.code).toBe('RATE_LIMITED')
    expect(err.status).toBe(429)
    expect(err.message).toMatch(/already has 2 requests waiting.*max_queued.*try again in \d+ s/)
    expect(err.details).toMatchObject({ reason: 'max_queued', retry_after_s: expect.any(Number) })
    expect(s.sched.snapshot()).toEqual(before)
    // Another device is not affected by A's full waiting room.
    s.submit('b', 'B', { limits: lim })
  })

  test('max_queued 0 still lets a request start when it would not wait', async () => {
    const s = new Sim()
    const lim = limits({ max_queued: 0 })
    s.submit('x', 'A', { limits: lim })
    await s.advance(0)
    expect(s.order()).toEqual(['x'])
    expect(refusal(() => s.submit('y', 'A', { limits: lim })).code).toBe('RATE_LIMITED')
    expect(s.sched.counter('A')).toBe(10)
  })

  test('aging: a request waiting past max_wait_s fails with a 503, a clear message and Retry-After', async () => {
    const s = new Sim()
    s.submit('long', 'A', { ms: 10 * 60_000, limits: ADMIN })
    s.submit('late', 'B', { limits: limits({ max_wait_s: 30 }) })
    await s.advance(29_999)
    expect(s.errors.size).toBe(0)
    await s.advance(1)
    const err = s.errors.get('late') as SharedLLMError
    expect(err.status).toBe(503)
    expect(err.message).toMatch(/waited 30 s in the queue.*max_wait_s.*try again in \d+ s/)
    expect(err.details).toMatchObject({ reason: 'queue_wait', retry_after_s: expect.any(Number) })
    expect(s.sched.snapshot().waiting).toEqual([])
  })

  test('cancel of a waiting request frees its place at once (and an aborted signal does the same)', async () => {
    const s = new Sim()
    const lim = limits({ max_queued: 1 })
    s.submit('run', 'A', { limits: lim })
    const t = s.submit('w', 'A', { limits: lim })
    await s.advance(0)
    expect(refusal(() => s.submit('w2', 'A', { limits: lim })).code).toBe('RATE_LIMITED')
    t.cancel()
    await s.advance(0)
    expect(s.errors.get('w')?.code).toBe('CANCELLED')
    const ac = new AbortController()
    s.submit('w3', 'A', { limits: lim, signal: ac.signal })
    ac.abort()
    await s.advance(0)
    expect(s.errors.get('w3')?.code).toBe('CANCELLED')
    s.submit('w4', 'A', { limits: lim })
    s.leases.get('run')?.finish()
    await s.advance(0)
    expect(s.order()).toEqual(['run', 'w4'])
  })

  test('revocation drops all of a device queued requests at once; others keep their places', async () => {
    const s = new Sim()
    s.submit('run', 'A')
    for (let i = 0; i < 4; i++) s.submit(`a${i}`, 'A')
    s.submit('b0', 'B')
    await s.advance(0)
    expect(s.sched.drop('A')).toBe(4)
    await s.advance(0)
    expect([...s.errors.keys()].sort()).toEqual(['a0', 'a1', 'a2', 'a3'])
    expect(s.errors.get('a0')?.status).toBe(401)
    expect(s.sched.snapshot().waiting.map((w) => w.request_id)).toEqual(['b0'])
    expect(s.sched.drop('A', { running: true })).toBe(1)
    expect(s.leases.get('run')?.signal.aborted).toBe(true)
  })
})

describe('model locality', () => {
  test('a request for another model waits while the loaded one has work, at most model_switch_wait_s', async () => {
    const s = new Sim()
    s.loaded.clear()
    s.loaded.add('a')
    for (let i = 0; i < 100; i++) s.submit(`a${i}`, 'X', { model: 'a', ms: 3000, limits: USER })
    await s.advance(1000)
    s.submit('b', 'Y', { model: 'b', ms: 3000, limits: ADMIN })
    await s.advance(20_000 - 1)
    expect(s.order()).not.toContain('b')
    await s.advance(1)
    // Aged: it goes at once, on its own model's slot, without waiting for another event.
    expect(s.started.find((x) => x.id === 'b')?.at).toBe(1_000_000 + 21_000)
  })

  test('with nothing to do on the loaded model, another model starts at once (work-conserving)', async () => {
    const s = new Sim()
    s.submit('b', 'Y', { model: 'b', ms: 1000 })
    await s.advance(0)
    expect(s.order()).toEqual(['b'])
  })

  test('a model that can load alongside is not held back', async () => {
    const s = new Sim({ canLoadAlongside: (m) => m === 'b' })
    s.submit('a0', 'X', { model: 'a', ms: 5000 })
    s.submit('a1', 'X', { model: 'a', ms: 5000 })
    s.submit('b', 'Y', { model: 'b', ms: 1000 })
    await s.advance(0)
    expect(s.order()).toEqual(['a0', 'b'])
  })
})

describe('pause, resume and reclaim', () => {
  test('a paused role waits (wait) or is refused (refuse); others go first; resume releases it', async () => {
    const s = new Sim()
    s.submit('run', 'O', { limits: ADMIN })
    s.submit('g1', 'G', { limits: GUEST })
    s.submit('o1', 'O', { limits: ADMIN, prompt: 10_000 })
    await s.advance(0)
    s.sched.pause('role-guest')
    s.leases.get('run')?.finish()
    await s.advance(0)
    expect(s.order()).toEqual(['run', 'o1'])
    expect(s.sched.positions().find((p) => p.request_id === 'g1')).toMatchObject({ eta_s: null })
    s.sched.resume('role-guest')
    s.leases.get('o1')?.finish()
    await s.advance(0)
    expect(s.order()).toEqual(['run', 'o1', 'g1'])

    s.submit('g2', 'G', { limits: GUEST })
    s.sched.pause('role-guest', 'refuse')
    await s.advance(0)
    expect(s.errors.get('g2')?.message).toMatch(/paused the queue/)
    const err = refusal(() => s.submit('g3', 'G', { limits: GUEST }))
    expect(err.status).toBe(503)
    expect(err.details).toMatchObject({ reason: 'paused', retry_after_s: 60 })
    expect(s.sched.pausedRoles()).toEqual([{ role_id: 'role-guest', mode: 'refuse' }])
  })

  test('reclaim aborts the running requests of the lowest-weight devices with a clear error', async () => {
    const s = new Sim()
    s.cap.set('a', 3)
    s.submit('g', 'G', { limits: GUEST })
    s.submit('u', 'U', { limits: USER })
    s.submit('o', 'O', { limits: ADMIN })
    await s.advance(0)
    expect(s.sched.reclaim()).toEqual(['g'])
    const g = s.leases.get('g') as Lease
    expect(g.signal.aborted).toBe(true)
    expect((g.signal.reason as SharedLLMError).message).toMatch(/took the GPU back/)
    expect(s.leases.get('u')?.signal.aborted).toBe(false)
    // Its slot frees once the gateway ends it.
    expect(s.sched.snapshot().running).toHaveLength(3)
    g.finish()
    expect(s.sched.snapshot().running).toHaveLength(2)
    expect(s.sched.reclaim({ count: 1 })).toEqual(['u'])
    expect(s.sched.reclaim({ count: 0 })).toEqual([])
  })
})

describe('expected wait per model (pooling compares it with a peer’s)', () => {
  test('0 with a free slot; then what is left of the running request plus one service time per waiting one', async () => {
    const s = new Sim()
    expect(s.sched.expectedWaitMs('a')).toBe(0)
    s.submit('first', 'A')
    await s.advance(0)
    // One running, none timed yet: its service time is at least what it has run so far.
    expect(s.sched.expectedWaitMs('a')).toBeUndefined()
    await s.advance(3000)
    expect(s.sched.expectedWaitMs('a')).toBe(0)
    s.leases.get('first')?.finish()
    // Timed: 3 s per request of model a.
    s.submit('run', 'A')
    s.submit('w1', 'B')
    s.submit('w2', 'C')
    await s.advance(1000)
    expect(s.sched.expectedWaitMs('a')).toBe(2000 + 2 * 3000)
    expect(s.sched.waitByModel()).toEqual({ a: 8000 })
    // Another model with nothing running or waiting starts at once.
    expect(s.sched.expectedWaitMs('b')).toBe(0)
    // Two slots: the work ahead is shared.
    s.cap.set('a', 2)
    s.sched.poke()
    await s.advance(0)
    // w1 started in the second slot; w2 waits for the first of them.
    expect(s.sched.expectedWaitMs('a')).toBe(Math.round((2000 + 3000 + 3000) / 2))
  })

  test('requests of a paused role go after a new one and do not count', async () => {
    const s = new Sim()
    s.submit('t', 'A', { limits: ADMIN })
    await s.advance(0)
    await s.advance(5000)
    s.leases.get('t')?.finish()
    s.submit('run', 'A', { limits: ADMIN })
    s.submit('g', 'G', { limits: GUEST })
    await s.advance(0)
    expect(s.sched.expectedWaitMs('a')).toBe(5000 + 5000)
    s.sched.pause('role-guest')
    expect(s.sched.expectedWaitMs('a')).toBe(5000)
  })
})

describe('positions, ETA, snapshot and metrics', () => {
  test('positions follow the start order, with an ETA from the EWMA of service time', async () => {
    const s = new Sim()
    s.submit('warm', 'A', { ms: 4000 })
    await s.advance(4000) // one timed request: 4 s per request of model a
    s.submit('r', 'A', { ms: 4000 })
    s.submit('a1', 'A', { ms: 4000 })
    s.submit('b1', 'B', { ms: 4000 })
    s.submit('a2', 'A', { ms: 4000 })
    await s.advance(1000)
    const pos = s.sched.positions()
    // B is lifted to A's counter; the tie goes to the older head (a1); then B, whose counter is lower.
    expect(pos.map((p) => [p.request_id, p.position, p.eta_s])).toEqual([
      ['a1', 1, 3],
      ['b1', 2, 7],
      ['a2', 3, 11],
    ])
    expect(pos[0]?.waited_s).toBe(1)
    const snap = s.sched.snapshot()
    expect(snap.waiting.map((w) => w.request_id)).toEqual(['a1', 'b1', 'a2'])
    expect(snap.running).toEqual([
      { request_id: 'r', device_id: 'A', model: 'a', running_s: 1, reclaimed: false },
    ])
    expect(snap.devices.find((d) => d.device_id === 'A')).toMatchObject({ waiting: 2, running: 1 })
  })

  test('changedPositions reports only what moved since the last call', async () => {
    const s = new Sim()
    s.submit('run', 'A', { ms: 1000 })
    s.submit('a1', 'A', { ms: 1000 })
    s.submit('b1', 'B', { ms: 1000 })
    await s.advance(0)
    expect(s.sched.changedPositions().map((p) => [p.request_id, p.position])).toEqual([
      ['a1', 1],
      ['b1', 2],
    ])
    expect(s.sched.changedPositions()).toEqual([])
    s.submit('c1', 'C', { ms: 1000 })
    expect(s.sched.changedPositions().map((p) => p.request_id)).toEqual(['c1'])
    // run ends: A has used the most, so b1 starts (older than c1 at the same lifted counter), c1 moves to
    // the front, a1 back, and an ETA is known now that one request was timed.
    await s.advance(1000)
    expect(s.sched.changedPositions().map((p) => [p.request_id, p.position, p.eta_s])).toEqual([
      ['c1', 1, 1],
      ['a1', 2, 2],
    ])
  })

  test('metrics: queue depth and VTC counter per device, and the wait histogram by role', async () => {
    const s = new Sim()
    s.submit('x', 'dev"1', { ms: 1000, limits: USER })
    s.submit('y', 'dev"1', { ms: 1000, limits: USER })
    await s.advance(500)
    const lines = renderQueueMetrics(s.sched, (id) => `name of ${id}`)
    expect(lines).toContain('sharedllm_queue_depth{device="name of dev\\"1"} 1')
    expect(lines).toContain('sharedllm_vtc_counter{device="name of dev\\"1"} 5')
    expect(lines).toContain('# TYPE sharedllm_queue_wait_seconds histogram')
    expect(lines).toContain('sharedllm_queue_wait_seconds_bucket{le="0.1",role="role-user"} 1')
    await s.advance(1000)
    const after = renderQueueMetrics(s.sched)
    expect(after).toContain('sharedllm_queue_wait_seconds_bucket{le="0.5",role="role-user"} 1')
    expect(after).toContain('sharedllm_queue_wait_seconds_bucket{le="1",role="role-user"} 2')
    expect(after).toContain('sharedllm_queue_wait_seconds_count{role="role-user"} 2')
    expect(after).toContain('sharedllm_queue_wait_seconds_sum{role="role-user"} 1')
  })

  test('a listener that throws does not break the queue', async () => {
    const s = new Sim({
      onChange: () => {
        throw new Error('listener')
      },
    })
    s.submit('x', 'A', { ms: 10 })
    await s.advance(100)
    expect(s.finished).toHaveLength(1)
  })

  test('close: waiting requests fail with 503, timers stop, new ones are refused', async () => {
    const s = new Sim()
    s.loaded.clear()
    s.submit('run', 'A', { model: 'a' })
    s.submit('w', 'B', { model: 'a' })
    s.submit('held', 'C', { model: 'b' }) // waits for the model switch: an aging timer runs
    await s.advance(0)
    s.sched.close()
    await s.advance(0)
    expect(s.errors.get('w')?.details).toMatchObject({ reason: 'shutdown' })
    expect(s.errors.get('held')?.status).toBe(503)
    expect(s.clock.pending).toBe(0)
    expect(refusal(() => s.submit('late', 'A')).message).toMatch(/shutting down/)
    s.leases.get('run')?.finish()
  })

  test('a duplicate request id is refused', () => {
    const s = new Sim()
    s.submit('x', 'A')
    expect(refusal(() => s.submit('x', 'B')).code).toBe('CONFLICT')
  })
})

describe('properties', () => {
  test('two continuously backlogged devices: the weighted service gap stays bounded, and the queue is work-conserving', async () => {
    const job = fc.record({
      prompt: fc.integer({ min: 0, max: 300 }),
      output: fc.integer({ min: 1, max: 300 }),
    })
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 4 }),
        fc.integer({ min: 1, max: 4 }),
        fc.integer({ min: 1, max: 3 }),
        fc.array(job, { minLength: 15, maxLength: 30 }),
        fc.array(job, { minLength: 15, maxLength: 30 }),
        async (wa, wb, capacity, jobsA, jobsB) => {
          const s = new Sim()
          s.cap.set('a', capacity)
          const la = limits({ role_id: 'ra', share_weight: wa, max_concurrent: capacity })
          const lb = limits({ role_id: 'rb', share_weight: wb, max_concurrent: capacity })
          const cost = new Map<string, { prompt: number; output: number }>()
          const submitAll = (dev: string, jobs: typeof jobsA, lim: QueueLimits) =>
            jobs.forEach((j, i) => {
              cost.set(`${dev}${i}`, j)
              // Service time grows with the tokens produced, as on a real GPU.
              s.submit(`${dev}${i}`, dev, { ...j, limits: lim, ms: 10 + j.output * 5 })
            })
          submitAll('A', jobsA, la)
          submitAll('B', jobsB, lb)
          const maxCost = Math.max(...[...jobsA, ...jobsB].map((j) => j.prompt + 2 * j.output))
          const bound = ((capacity + 1) * maxCost) / Math.min(wa, wb)
          const service = (dev: string, w: number) => {
            let sum = 0
            for (const st of s.started) if (st.device === dev) sum += cost.get(st.id)?.prompt ?? 0
            for (const f of s.finished) if (f.device === dev) sum += 2 * (cost.get(f.id)?.output ?? 0)
            return sum / w
          }
          await s.advance(0)
          let checked = 0
          for (let step = 0; step < 400; step++) {
            const snap = s.sched.snapshot()
            const waiting = (dev: string) => snap.devices.find((d) => d.device_id === dev)?.waiting ?? 0
            // Work-conserving: a slot is never idle while someone waits.
            if (snap.waiting.length > 0) expect(snap.models[0]?.running).toBe(capacity)
            if (waiting('A') === 0 || waiting('B') === 0) break
            expect(Math.abs(service('A', wa) - service('B', wb))).toBeLessThanOrEqual(bound)
            checked++
            const at = s.clock.nextAt()
            if (at === undefined) break
            await s.advance(at - s.clock.now())
          }
          // Both stayed backlogged for many service times, so the bound was checked where it matters.
          expect(checked).toBeGreaterThanOrEqual(Math.min(jobsA.length, jobsB.length) / capacity - 2)
        },
      ),
      { numRuns: 60 },
    )
  }, 60_000)

  test('the bound is tight enough to catch first-come-first-served', async () => {
    // The same measure on a FIFO across devices (A's jobs all submitted first) breaks the bound.
    const s = new Sim()
    const served: Record<string, number> = { A: 0, B: 0 }
    const order: string[] = []
    for (let i = 0; i < 20; i++) order.push('A')
    for (let i = 0; i < 20; i++) order.push('B')
    let maxGap = 0
    for (const dev of order) {
      served[dev] = (served[dev] ?? 0) + 30
      maxGap = Math.max(maxGap, Math.abs((served.A ?? 0) - (served.B ?? 0)))
    }
    expect(maxGap).toBeGreaterThan(2 * 30)
    // The scheduler itself on that arrival order stays within it.
    for (const [i, dev] of order.entries()) s.submit(`${dev}${i}`, dev, { ms: 50 })
    let gap = 0
    for (let step = 0; step < 30; step++) {
      await s.advance(50)
      const a = s.started.filter((x) => x.device === 'A').length
      const b = s.started.filter((x) => x.device === 'B').length
      gap = Math.max(gap, Math.abs(a - b))
    }
    expect(gap).toBeLessThanOrEqual(1)
  })
})

describe('limits from a role', () => {
  test('queueLimitsOf takes the role fields the queue needs', () => {
    expect(
      queueLimitsOf({ id: 'role-guest', share_weight: 1, max_concurrent: 1, max_queued: 2, max_wait_s: 60 }),
    ).toEqual({ role_id: 'role-guest', share_weight: 1, max_concurrent: 1, max_queued: 2, max_wait_s: 60 })
  })
})

describe('estimates', () => {
  test('characters / 4 plus a fixed cost per image, over native and OpenAI bodies', () => {
    expect(estimatePromptTokens({ prompt: 'x'.repeat(40), system: 'y'.repeat(4) })).toBe(11)
    expect(
      estimatePromptTokens({
        messages: [
          { role: 'user', content: 'x'.repeat(8), images: ['aGk=', 'aGk='] },
          {
            role: 'user',
            content: [
              { type: 'text', text: 'y'.repeat(4) },
              { type: 'image_url', image_url: { url: 'data:...' } },
            ],
          },
          null,
          { content: 7 },
        ],
      }),
    ).toBe(3 + 3 * IMAGE_TOKENS)
    expect(estimatePromptTokens({ input: ['abcd', 'efgh', 5] })).toBe(2)
    expect(estimatePromptTokens(null)).toBe(0)
    expect(estimatePromptTokens('prompt')).toBe(0)
  })
})

import { describe, expect, it, vi } from 'vitest'
import {
  EventBus,
  type ModelTraits,
  numParallelFromEnv,
  QueueService,
  QuotaWatch,
  silentLogger,
  traitsFromShow,
} from '../src/index'

const LIMITS = { role_id: 'r', share_weight: 1, max_concurrent: 8, max_queued: 8, max_wait_s: 60 }

function service(traits: Record<string, ModelTraits | undefined>, numParallel = 4, freeMb?: number) {
  const bus = new EventBus(() => {})
  const q = new QueueService({
    bus,
    log: silentLogger,
    numParallel: () => numParallel,
    modelSwitchWaitS: () => 20,
    traits: async (m) => traits[m],
    freeMb: () => freeMb,
  })
  return { bus, q }
}

describe('QueueService: Ollama’s capacity per model (server/sched.go load)', () => {
  it('OLLAMA_NUM_PARALLEL as envconfig reads it, at least 1', () => {
    expect(numParallelFromEnv(undefined)).toBe(1)
    expect(numParallelFromEnv('')).toBe(1)
    expect(numParallelFromEnv('4')).toBe(4)
    expect(numParallelFromEnv('0')).toBe(1)
    expect(numParallelFromEnv('-2')).toBe(1)
    expect(numParallelFromEnv('two')).toBe(1)
  })

  it('the setting for completion models; 1 for embedding-only models and the serial families', async () => {
    const { q } = service({
      'llama3.2:3b': { completion: true, family: 'llama' },
      'nomic-embed-text:latest': { completion: false, family: 'nomic-bert' },
      'llama3.2-vision:11b': { completion: true, family: 'mllama' },
    })
    // Unknown until /api/show answers: the setting applies meanwhile.
    expect(q.capacity('llama3.2:3b')).toBe(4)
    expect(q.capacity('nomic-embed-text')).toBe(4)
    await vi.waitFor(() => expect(q.capacity('nomic-embed-text')).toBe(1))
    expect(q.capacity('llama3.2:3b')).toBe(4)
    q.capacity('llama3.2-vision:11b')
    await vi.waitFor(() => expect(q.capacity('llama3.2-vision:11b')).toBe(1))
    q.close()
  })

  it('traits from /api/show: capabilities, family, size', () => {
    expect(
      traitsFromShow({ capabilities: ['completion', 'tools'], details: { family: 'Qwen3' } }, 5e9),
    ).toEqual({
      completion: true,
      family: 'qwen3',
      sizeBytes: 5e9,
    })
    expect(traitsFromShow({ capabilities: ['embedding'], details: {} })).toEqual({
      completion: false,
      family: '',
    })
    expect(traitsFromShow({ details: { family: 'llama' } })).toEqual({ completion: true, family: 'llama' })
    expect(traitsFromShow(null)).toBeUndefined()
  })

  it('a model larger than the free memory is held for locality; unknown sizes are not', async () => {
    const { q } = service(
      { 'big:70b': { completion: true, family: 'llama', sizeBytes: 40 * 2 ** 30 } },
      1,
      8192,
    )
    expect(q.fitsAlongside('big:70b')).toBe(true) // not known yet
    q.capacity('big:70b')
    await vi.waitFor(() => expect(q.fitsAlongside('big:70b')).toBe(false))
    expect(q.fitsAlongside('small:1b')).toBe(true)
    q.close()
  })

  it('revocation drops the device’s waiting requests; positions are published once per change', async () => {
    const { bus, q } = service({}, 1)
    const seen: unknown[] = []
    bus.on('queue_position', (p) => seen.push(p))
    const s = q.scheduler
    const run = s.submit({ id: 'a', device_id: 'd1', model: 'm:1', limits: LIMITS, prompt_tokens: 1 })
    const w1 = s.submit({ id: 'b', device_id: 'd1', model: 'm:1', limits: LIMITS, prompt_tokens: 1 })
    const w2 = s.submit({ id: 'c', device_id: 'd2', model: 'm:1', limits: LIMITS, prompt_tokens: 1 })
    await vi.waitFor(() => expect(seen.length).toBe(2))
    expect(seen).toEqual([
      { device_id: 'd1', request_id: 'b', position: 1, eta_s: null },
      { device_id: 'd2', request_id: 'c', position: 2, eta_s: null },
    ])
    bus.emit('device_keys_revoked', { device_id: 'd1' })
    await expect(w1.granted).rejects.toMatchObject({ code: 'UNAUTHORIZED' })
    const lease = await run.granted
    lease.finish({ prompt_eval_count: 1, eval_count: 1 })
    await expect(w2.granted).resolves.toMatchObject({ id: 'c' })
    q.close()
  })
})

describe('QuotaWatch', () => {
  const zone = () => 'Europe/Berlin'
  const budgets = { day: 100, week: null, month: null }

  it('parallel requests that cross a mark together report it once; the first read is not counted twice', async () => {
    let stored = 60 // the rollups already hold 60; the recorder holds what is handed to observe
    let pending = 0
    const watch = new QuotaWatch({ usedSince: async () => (_from) => stored + pending, zone })
    const now = Date.UTC(2026, 11, 1, 12)
    // Three requests of 10 recorded at once (the recorder holds them before the watch reads).
    pending = 30
    const all = await Promise.all([1, 2, 3].map(() => watch.observe('d', budgets, 10, now)))
    expect(all.flat().map((c) => c.threshold)).toEqual([80])
    expect(all.flat()[0]).toMatchObject({ used: 80, budget: 100, window: 'day' })
    stored = 100
    pending = 0
    const more = await watch.observe('d', budgets, 20, now)
    expect(more.map((c) => [c.threshold, c.used])).toEqual([[100, 110]])
    expect(await watch.observe('d', budgets, 5, now)).toEqual([])
    // A new day starts over.
    expect(await watch.observe('d', budgets, 85, now + 86_400_000)).toEqual([
      expect.objectContaining({ threshold: 80, used: 85 }),
    ])
  })

  it('a forgotten device is read again on its next request', async () => {
    let stored = 0
    const usedSince = vi.fn(async () => (_from: number) => stored)
    const watch = new QuotaWatch({ usedSince, zone })
    const now = Date.UTC(2026, 11, 1, 12)
    stored = 10
    expect(await watch.observe('d', budgets, 10, now)).toEqual([])
    expect(await watch.observe('d', budgets, 10, now)).toEqual([])
    expect(usedSince).toHaveBeenCalledTimes(1)
    watch.forget('d')
    stored = 85 // read afresh: 85 already recorded, this request's 10 included
    expect(await watch.observe('d', budgets, 10, now)).toEqual([
      expect.objectContaining({ threshold: 80, used: 85 }),
    ])
    expect(usedSince).toHaveBeenCalledTimes(2)
  })

  it('devices without a budget cost nothing', async () => {
    const usedSince = vi.fn(async () => () => 0)
    const watch = new QuotaWatch({ usedSince, zone })
    expect(await watch.observe('d', { day: null, week: null, month: null }, 10, Date.now())).toEqual([])
    expect(usedSince).not.toHaveBeenCalled()
  })
})

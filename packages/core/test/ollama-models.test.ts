import { afterEach, describe, expect, test } from 'vitest'
import { isSharedLLMError, type SharedLLMError } from '../src/errors'
import { EventBus } from '../src/events'
import { silentLogger } from '../src/logger'
import { ModelManager, type ModelManagerOptions, OllamaClient } from '../src/ollama/index'
import type { EventMap, EventType } from '../src/protocol/events'
import type { PullProgress } from '../src/protocol/types'
import { type FakeOllamaOptions, startFakeOllama } from '../src/testing/fake-ollama'

const cleanups: Array<() => unknown> = []
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()?.()
})

async function setup(fakeOpts: FakeOllamaOptions = {}, opts: Partial<ModelManagerOptions> = {}) {
  const fake = await startFakeOllama(fakeOpts)
  cleanups.push(() => fake.stop())
  const client = new OllamaClient({ host: fake.url, timeoutMs: 5000 })
  const bus = new EventBus()
  const events: Array<{ type: EventType; payload: unknown }> = []
  bus.onAny((type, payload) => events.push({ type, payload }))
  const models = new ModelManager({ client, bus, log: silentLogger, progressIntervalMs: 0, ...opts })
  cleanups.push(() => models.stop())
  const of = <K extends EventType>(type: K) =>
    events.filter((e) => e.type === type).map((e) => e.payload as EventMap[K])
  return { fake, client, bus, models, of }
}

async function rejection(p: Promise<unknown>): Promise<SharedLLMError> {
  try {
    await p
  } catch (err) {
    if (isSharedLLMError(err)) return err
    throw err
  }
  throw new Error('expected a rejection')
}

const LAYER_A = 408734816
const LAYER_B = 260

describe('ModelManager', () => {
  test('list and running', async () => {
    const { models, client } = await setup()
    const list = await models.list()
    expect(list).toHaveLength(16)
    expect(list.find((m) => m.name === 'mistral:7b')).toMatchObject({
      size: 4113301824,
      details: { family: 'llama' },
    })
    expect(await models.running()).toEqual([])
    await (
      await client.request('/api/generate', {
        method: 'POST',
        body: '{"model":"mistral:7b","prompt":"x","stream":false}',
      })
    ).text()
    expect((await models.running()).map((m) => m.name)).toEqual(['mistral:7b'])
  })

  test('pull aggregates progress over layers, as events and as an async iterator', async () => {
    const { models, of } = await setup({ pullSteps: 4 })
    const handle = models.pull('tinyllama')
    const seen: PullProgress[] = []
    for await (const p of handle) seen.push(p)
    await handle.done

    const events = of('model_pull_progress')
    expect(events[0]).toEqual({
      name: 'tinyllama',
      status: 'pulling manifest',
      completed: 0,
      total: 0,
      percent: null,
    })
    // The captured head repeats one layer without `completed`: its total counts once.
    expect(events).toContainEqual({
      name: 'tinyllama',
      status: 'pulling 26bd607a51eb',
      completed: 0,
      total: LAYER_A,
      percent: 0,
    })
    expect(events).toContainEqual({
      name: 'tinyllama',
      status: 'pulling 26bd607a51eb',
      completed: Math.round(LAYER_A / 2),
      total: LAYER_A,
      percent: 50,
    })
    // The second layer raises the total; percent is over both layers.
    expect(events).toContainEqual({
      name: 'tinyllama',
      status: 'pulling 5bbbf644084d',
      completed: LAYER_A,
      total: LAYER_A + LAYER_B,
      percent: Math.floor((LAYER_A / (LAYER_A + LAYER_B)) * 1000) / 10,
    })
    const last = {
      name: 'tinyllama',
      status: 'success',
      completed: LAYER_A + LAYER_B,
      total: LAYER_A + LAYER_B,
      percent: 100,
    }
    expect(events.at(-1)).toEqual(last)
    expect(seen.at(-1)).toEqual(last)
    // Ollama reveals layers one by one, so the percent over the layers known so far can step back
    // (100 -> 99.9 when the small second layer appears); it never exceeds 100.
    expect(events.every((e) => e.percent === null || (e.percent >= 0 && e.percent <= 100))).toBe(true)
    expect(of('model_pulled')).toEqual([{ name: 'tinyllama' }])
    expect(models.activePulls()).toEqual([])
    await expect.poll(() => of('models_changed').length).toBe(1)
    expect(of('models_changed')[0]!.models.map((m) => m.name)).toContain('tinyllama:latest')
  })

  test('a second pull of the same model joins the first: one request to Ollama', async () => {
    const { models, fake, of } = await setup({ chunkDelayMs: 10 })
    const a = models.pull('tinyllama')
    const b = models.pull('tinyllama:latest')
    expect(models.activePulls()).toHaveLength(1)
    const fromB: PullProgress[] = []
    for await (const p of b) fromB.push(p)
    await Promise.all([a.done, b.done])
    expect(fromB.at(-1)?.status).toBe('success')
    expect((await fake.requests()).filter((r) => r.path === '/api/pull')).toHaveLength(1)
    expect(of('model_pulled')).toHaveLength(1)
  })

  test('a pull that ends in an error line fails with Ollama’s message', async () => {
    const { models, of } = await setup()
    const handle = models.pull('error-model')
    const iterated = (async () => {
      for await (const _ of handle) {
        // drain
      }
    })()
    const err = await rejection(handle.done)
    expect(err.code).toBe('PULL_FAILED')
    expect(err.message).toContain('pull model manifest: file does not exist')
    expect((await rejection(iterated)).code).toBe('PULL_FAILED')
    expect(of('model_pull_failed')).toEqual([
      { name: 'error-model', error: 'pull model manifest: file does not exist' },
    ])
    expect(of('model_pulled')).toEqual([])
    expect(models.activePulls()).toEqual([])
  })

  test('cancel stops the download and ends the pull as CANCELLED', async () => {
    const { models, of, client } = await setup({ chunkDelayMs: 40 })
    const handle = models.pull('slowmodel')
    await expect.poll(() => models.activePulls()[0]?.total ?? 0).toBeGreaterThan(0)
    expect(models.cancelPull('slowmodel')).toBe(true)
    const err = await rejection(handle.done)
    expect(err.code).toBe('CANCELLED')
    expect(of('model_pull_failed')).toEqual([
      { name: 'slowmodel', error: 'The pull of slowmodel was cancelled' },
    ])
    expect(models.activePulls()).toEqual([])
    expect(models.cancelPull('slowmodel')).toBe(false)
    // Ollama never finished it: the model did not appear.
    expect((await client.tags()).map((m) => m.name)).not.toContain('slowmodel:latest')
  })

  test('handle.cancel() works too, and a new pull can start afterwards', async () => {
    const { models } = await setup({ chunkDelayMs: 40 })
    const first = models.pull('again')
    first.cancel()
    expect((await rejection(first.done)).code).toBe('CANCELLED')
    const second = models.pull('again')
    expect(second.done).not.toBe(first.done)
    second.cancel()
    await rejection(second.done)
  })

  test('model names are validated before any request is sent', async () => {
    const { models, fake } = await setup()
    await fake.clearRequests()
    expect(() => models.pull('../../etc/passwd')).toThrow(/Invalid model name/)
    await expect(models.delete('a b')).rejects.toMatchObject({ code: 'VALIDATION' })
    await expect(models.show('x'.repeat(201))).rejects.toMatchObject({ code: 'VALIDATION' })
    expect(() => models.cancelPull('bad name')).toThrow(/Invalid model name/)
    expect(await fake.requests()).toEqual([])
  })

  test('delete refuses a loaded model unless forced; force unloads then deletes', async () => {
    const { models, client, of } = await setup()
    await (
      await client.request('/api/chat', {
        method: 'POST',
        body: JSON.stringify({
          model: 'gemma3:4b',
          stream: false,
          messages: [{ role: 'user', content: 'hi' }],
        }),
      })
    ).text()
    const err = await rejection(models.delete('gemma3:4b'))
    expect(err.code).toBe('MODEL_IN_USE')
    expect(err.status).toBe(409)
    expect((await client.tags()).map((m) => m.name)).toContain('gemma3:4b')
    expect(of('model_deleted')).toEqual([])

    await models.delete('gemma3:4b', { force: true })
    expect((await client.tags()).map((m) => m.name)).not.toContain('gemma3:4b')
    expect(await client.ps()).toEqual([])
    expect(of('model_deleted')).toEqual([{ name: 'gemma3:4b' }])
  })

  test('delete refuses a model in use by an open request (inUse hook) and one being pulled', async () => {
    const { models } = await setup({ chunkDelayMs: 40 }, { inUse: (name) => name === 'qwen3:8b' })
    expect((await rejection(models.delete('qwen3:8b'))).code).toBe('MODEL_IN_USE')
    const handle = models.pull('newmodel')
    expect((await rejection(models.delete('newmodel'))).code).toBe('CONFLICT')
    handle.cancel()
    await rejection(handle.done)
    await models.delete('mistral:7b')
    expect((await rejection(models.delete('mistral:7b'))).code).toBe('MODEL_NOT_FOUND')
  })

  test('start() polls running models and emits models_running only when the set changes', async () => {
    const { models, client, of } = await setup({}, { pollIntervalMs: 50 })
    models.start()
    await expect.poll(() => of('models_running').length).toBe(1)
    expect(of('models_running')[0]).toEqual({ models: [] })
    await new Promise((r) => setTimeout(r, 200))
    expect(of('models_running')).toHaveLength(1)
    await (
      await client.request('/api/generate', {
        method: 'POST',
        body: '{"model":"qwen3:8b","keep_alive":"10m"}',
      })
    ).text()
    await expect.poll(() => of('models_running').length).toBe(2)
    expect(of('models_running')[1]!.models.map((m) => m.name)).toEqual(['qwen3:8b'])
    expect(models.lastKnownRunning().map((m) => m.name)).toEqual(['qwen3:8b'])
    await (
      await client.request('/api/generate', { method: 'POST', body: '{"model":"qwen3:8b","keep_alive":0}' })
    ).text()
    await expect.poll(() => of('models_running').length).toBe(3)
    expect(of('models_running')[2]).toEqual({ models: [] })
  })

  test('the poll keeps going, silently, while Ollama is down', async () => {
    const { models, fake, of } = await setup({}, { pollIntervalMs: 50 })
    await fake.stop()
    models.start()
    await new Promise((r) => setTimeout(r, 200))
    expect(of('models_running')).toEqual([])
  })
})

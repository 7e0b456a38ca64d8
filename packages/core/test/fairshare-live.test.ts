import { afterAll, beforeAll, expect, test } from 'vitest'
import { estimatePromptTokens, FairScheduler, type QueueLimits, readNdjson } from '../src/index'
import { type FakeOllama, startFakeOllama } from '../src/testing/fake-ollama'

// The queue in front of a real HTTP stand-in for Ollama, with real NDJSON streams: what the gateway will do
// with it (one slot, as OLLAMA_NUM_PARALLEL=1), minus the gateway.
let fake: FakeOllama
let model: string
beforeAll(async () => {
  fake = await startFakeOllama({ chunks: 12, chunkDelayMs: 5, record: false })
  const tags = (await (await fetch(`${fake.url}/api/tags`)).json()) as { models: Array<{ name: string }> }
  model = tags.models[0]?.name as string
})
afterAll(() => fake?.stop())

const GUEST: QueueLimits = {
  role_id: 'role-guest',
  share_weight: 1,
  max_concurrent: 1,
  max_queued: 50,
  max_wait_s: 600,
}
const OWNER: QueueLimits = {
  role_id: 'role-admin',
  share_weight: 4,
  max_concurrent: 1,
  max_queued: 16,
  max_wait_s: 600,
}

test('a flooding guest delays the owner by at most one request; counters follow the exact counts', async () => {
  const started: string[] = []
  const queue = new FairScheduler({ capacity: () => 1, loadedModels: () => [model] })
  let running = 0
  let maxRunning = 0
  const served = new Map<string, number>()
  const weighted = new Map<string, number>()

  async function chat(id: string, device: string, limits: QueueLimits) {
    const body = { model, messages: [{ role: 'user', content: `hello there number ${id}` }], stream: true }
    const ticket = queue.submit({
      id,
      device_id: device,
      model,
      limits,
      prompt_tokens: estimatePromptTokens(body),
    })
    const lease = await ticket.granted
    started.push(id)
    running++
    maxRunning = Math.max(maxRunning, running)
    try {
      const res = await fetch(`${fake.url}/api/chat`, { method: 'POST', body: JSON.stringify(body) })
      let final: { prompt_eval_count?: number; eval_count?: number } = {}
      for await (const line of readNdjson(res.body as ReadableStream<Uint8Array>)) {
        const chunk = line as { done?: boolean; prompt_eval_count?: number; eval_count?: number }
        if (chunk.done) final = chunk
        else lease.output(1)
      }
      const p = final.prompt_eval_count ?? 0
      const e = final.eval_count ?? 0
      served.set(device, (served.get(device) ?? 0) + p + e)
      weighted.set(device, (weighted.get(device) ?? 0) + p + 2 * e)
      running--
      lease.finish(final)
    } catch (err) {
      running--
      lease.finish()
      throw err
    }
  }

  const guest = Array.from({ length: 20 }, (_, i) => chat(`g${i}`, 'guest', GUEST))
  // Once the guest's first request runs and 19 wait, the owner asks.
  await expect.poll(() => started.length).toBeGreaterThanOrEqual(1)
  const before = started.length
  const owner = chat('owner', 'owner', OWNER)
  await Promise.all([...guest, owner])
  expect(maxRunning).toBe(1)
  // One guest request was running; at most one more may start before the owner's (a tie on the lifted
  // counter goes to the older head). First come, first served would put the owner after all 20.
  expect(started.indexOf('owner') - before).toBeLessThanOrEqual(1)
  expect(before).toBeLessThan(5)
  // Once each request ended, what the queue charged is exactly what Ollama reported (not the estimates).
  expect(served.get('guest')).toBeGreaterThan(20 * 12)
  expect(queue.served('guest')).toBe(served.get('guest'))
  expect(queue.served('owner')).toBe(served.get('owner'))
  // The guest was first, so it started at 0: its counter is its tokens, input ×1 and output ×2, over weight 1.
  expect(queue.counter('guest')).toBe(weighted.get('guest'))
})

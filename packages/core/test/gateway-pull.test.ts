import { afterAll, beforeAll, expect, it } from 'vitest'
import { type GatewayHarness, post, startGateway } from './gateway-harness'

// Device pulls run in the hub's model manager: the owner sees them with progress, can cancel them, and two
// pulls of one model (from two devices, in any spelling) are one pull from Ollama.
let h: GatewayHarness

beforeAll(async () => {
  // ~40 pull lines 25 ms apart: a pull lasts about a second.
  h = await startGateway({ fake: { chunkDelayMs: 25, pullSteps: 30 } })
})
afterAll(() => h.close())

it('two devices pulling one model share one pull; the owner sees it and its progress', async () => {
  const a = await h.device('puller-a')
  const b = await h.device('puller-b')
  await h.fake?.clearRequests()
  const first = post(`${h.url}/ollama/api/pull`, a.key, { model: 'tinyllama:1.1b' })
  await expect.poll(() => h.hub.models.activePulls().map((p) => p.name)).toEqual(['tinyllama:1.1b'])
  const second = post(`${h.url}/ollama/api/pull`, b.key, { name: 'TinyLlama:1.1b', stream: false })
  const [ra, rb] = await Promise.all([first, second])
  expect(ra.status).toBe(200)
  const lines = ra.text
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l))
  expect(lines.at(-1)).toEqual({ status: 'success' })
  // Progress summed over layers, as Ollama's stream shape (status, total, completed).
  expect(lines.some((l) => typeof l.total === 'number' && l.completed > 0)).toBe(true)
  expect(rb.status).toBe(200)
  expect(rb.json()).toEqual({ status: 'success' })
  const pulls = (await h.fake!.requests()).filter((r) => r.path === '/api/pull')
  expect(pulls).toHaveLength(1)
})

it('the owner cancels a device’s pull: the device’s stream ends with an error line', async () => {
  const dev = await h.device('puller-c')
  const pending = post(`${h.url}/ollama/api/pull`, dev.key, { model: 'smollm2:360m' })
  await expect.poll(() => h.hub.models.activePulls().some((p) => p.name === 'smollm2:360m')).toBe(true)
  expect(h.hub.models.cancelPull('smollm2:360m')).toBe(true)
  const res = await pending
  expect(res.status).toBe(200) // the stream had started; the failure is its last line, as Ollama does
  const last = JSON.parse(res.text.trim().split('\n').at(-1) as string)
  expect(last.error).toMatch(/cancelled/)
  expect(h.hub.models.activePulls()).toEqual([])
  expect(h.hub.policy.activeStreams(dev.deviceId)).toBe(0)
})

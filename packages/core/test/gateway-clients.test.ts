import { Ollama } from 'ollama'
import OpenAI from 'openai'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type GatewayHarness, startGateway } from './gateway-harness'

// The official clients, pointed at the gateway with a device key, against the fake Ollama (a real process
// replaying captured answers). The user role's 4096 MiB slice fits the small models of the captured list.
describe('official clients through the gateway', () => {
  let h: GatewayHarness
  let key: string
  let deviceId: string

  beforeAll(async () => {
    h = await startGateway({ fake: { chunks: 6 } })
    ;({ key, deviceId } = await h.device('laptop'))
  })
  afterAll(() => h.close())

  it('ollama: lists only the models that fit the slice and streams a chat chunk by chunk', async () => {
    const ollama = new Ollama({ host: `${h.url}/ollama`, headers: { Authorization: `Bearer ${key}` } })
    const { models } = await ollama.list()
    const names = models.map((m) => m.name).sort()
    expect(names).toContain('qwen3:1.7b')
    expect(names).toContain('cogito:3b')
    // 4445 MiB of weights alone: more than the 4096 MiB slice.
    expect(names).not.toContain('hermes3:8b')
    expect(names).not.toContain('gemma3n:e4b')

    const parts: string[] = []
    let final: { done: boolean; prompt_eval_count?: number; eval_count?: number } | undefined
    const stream = await ollama.chat({
      model: 'qwen3:1.7b',
      messages: [{ role: 'user', content: 'hello there gateway' }],
      stream: true,
    })
    for await (const part of stream) {
      if (part.done) final = part
      else parts.push(part.message.content)
    }
    expect(parts).toHaveLength(6)
    expect(parts.join('')).toBe('Echo: hello there gateway Echo: hello')
    expect(final?.done).toBe(true)
    expect(final?.eval_count).toBe(6)

    // Usage is recorded from the final counts.
    await expect.poll(async () => (await h.hub.policy.usageReport()).recent.length).toBeGreaterThan(0)
    const usage = (await h.hub.policy.usageReport()).recent.find((u) => u.endpoint === 'ollama:/api/chat')
    expect(usage).toMatchObject({
      device_id: deviceId,
      model: 'qwen3:1.7b',
      completion_tokens: 6,
      status: 200,
    })
    expect(usage?.prompt_tokens).toBe(final?.prompt_eval_count)
  })

  it('openai: lists models and streams a chat, with usage recorded though the client did not ask for it', async () => {
    const openai = new OpenAI({ baseURL: `${h.url}/v1`, apiKey: key, maxRetries: 0 })
    const list = await openai.models.list()
    const ids = list.data.map((m) => m.id)
    expect(ids).toContain('qwen3:1.7b')
    expect(ids).not.toContain('hermes3:8b')

    const stream = await openai.chat.completions.create({
      model: 'qwen3:1.7b',
      messages: [{ role: 'user', content: 'one two three' }],
      stream: true,
    })
    const chunks = []
    for await (const chunk of stream) chunks.push(chunk)
    // 6 content chunks + the finish chunk; the usage-only chunk the gateway added is not passed on.
    expect(chunks).toHaveLength(7)
    expect(chunks.every((c) => c.choices.length === 1)).toBe(true)
    expect(chunks.map((c) => c.choices[0]?.delta.content ?? '').join('')).toBe(
      'Echo: one two three Echo: one',
    )
    expect(chunks.at(-1)?.choices[0]?.finish_reason).toBe('stop')

    await expect
      .poll(async () =>
        (await h.hub.policy.usageReport()).recent.find((u) => u.endpoint === 'openai:/v1/chat/completions'),
      )
      .toMatchObject({ device_id: deviceId, model: 'qwen3:1.7b', completion_tokens: 6, status: 200 })
  })

  it('openai: a client that asks for usage gets the usage chunk', async () => {
    const openai = new OpenAI({ baseURL: `${h.url}/v1`, apiKey: key, maxRetries: 0 })
    const stream = await openai.chat.completions.create({
      model: 'qwen3:1.7b',
      messages: [{ role: 'user', content: 'a b' }],
      stream: true,
      stream_options: { include_usage: true },
    })
    const chunks = []
    for await (const chunk of stream) chunks.push(chunk)
    expect(chunks.at(-1)?.usage?.completion_tokens).toBe(6)
  })

  it('openai: a wrong key is an AuthenticationError with our message', async () => {
    const openai = new OpenAI({ baseURL: `${h.url}/v1`, apiKey: 'sllm_wrong', maxRetries: 0 })
    await expect(openai.models.list()).rejects.toMatchObject({ status: 401, code: 'UNAUTHORIZED' })
  })
})

// The Ollama contract (src/testing/ollama-contract.ts) against the stand-in, in two configurations; with
// OLLAMA_CONTRACT_URL set (`pnpm test:contract`) against that real Ollama instead.
import { afterAll, beforeAll, describe, test } from 'vitest'
import { type FakeOllama, startFakeOllama } from '../src/testing/fake-ollama'
import { type OllamaContractOptions, ollamaContract } from '../src/testing/ollama-contract'

const realUrl = process.env.OLLAMA_CONTRACT_URL

if (realUrl) {
  // OLLAMA_CONTRACT_MODELS="chat=llama3.2:3b,thinking=qwen3:1.7b,embed=,vision=,slidingWindow=gemma3:4b,cloud="
  const models = Object.fromEntries(
    (process.env.OLLAMA_CONTRACT_MODELS ?? '')
      .split(',')
      .filter(Boolean)
      .map((kv) => kv.split('=') as [string, string]),
  ) as OllamaContractOptions['models']
  const num = (k: string) => (process.env[k] ? Number(process.env[k]) : undefined)
  describe(`Ollama at ${realUrl}`, () => {
    ollamaContract(test, {
      baseUrl: realUrl,
      models,
      server: {
        contextLength: num('OLLAMA_CONTEXT_LENGTH'),
        keepAliveSeconds: num('OLLAMA_CONTRACT_KEEP_ALIVE_SECONDS') ?? 300,
        noCloud: Boolean(process.env.OLLAMA_NO_CLOUD),
        maxQueue: num('OLLAMA_CONTRACT_MAX_QUEUE'),
        tokensPerSecond: num('OLLAMA_CONTRACT_TOKENS_PER_SEC'),
        strictRegistry: process.env.OLLAMA_CONTRACT_STRICT_REGISTRY !== '0',
      },
      label: 'real ollama',
      timeoutMs: 300_000,
    })
  })
} else {
  const models = { cloud: 'gpt-oss:20b-cloud', mlx: 'qwen3-0.6b-mlx:latest' }
  const extraModels = [
    'llama3.2:3b',
    'all-minilm:l6-v2',
    'gpt-oss:20b-cloud',
    'granite4:tiny-h',
    'glm-4.7-flash',
    'qwen3-0.6b-mlx',
  ]

  describe('the stand-in, 8 GiB VRAM, OLLAMA_KEEP_ALIVE=10m, OLLAMA_MAX_QUEUE=1, 200 tokens/s', () => {
    let fake: FakeOllama
    beforeAll(async () => {
      fake = await startFakeOllama({
        extraModels,
        registry: 'catalog',
        thinking: 'model',
        tokensPerSecond: 200,
        loadMs: 150,
        ollamaEnv: { OLLAMA_KEEP_ALIVE: '10m', OLLAMA_MAX_QUEUE: '1' },
      })
    })
    afterAll(() => fake?.stop())
    ollamaContract(test, {
      baseUrl: () => fake.url,
      models,
      server: { keepAliveSeconds: 600, maxQueue: 1, tokensPerSecond: 200 },
      label: 'stand-in',
    })
  })

  describe('the stand-in, 24 GiB VRAM, OLLAMA_CONTEXT_LENGTH=8192, OLLAMA_NO_CLOUD=1', () => {
    let fake: FakeOllama
    beforeAll(async () => {
      fake = await startFakeOllama({
        extraModels,
        registry: 'catalog',
        thinking: 'model',
        vram: '24GiB',
        // a real load takes seconds; long enough here that /api/ps shows a model while it loads
        loadMs: 150,
        ollamaEnv: { OLLAMA_CONTEXT_LENGTH: '8192', OLLAMA_NO_CLOUD: '1' },
      })
    })
    afterAll(() => fake?.stop())
    ollamaContract(test, {
      baseUrl: () => fake.url,
      models,
      server: { contextLength: 8192, noCloud: true },
      label: 'stand-in (no cloud)',
    })
  })
}

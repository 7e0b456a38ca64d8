// The Ollama contract (src/testing/ollama-contract.ts) against the stand-in, in two configurations; with
// OLLAMA_CONTRACT_URL set (`pnpm test:contract`) against that real Ollama instead.
import { afterAll, beforeAll, describe, test } from 'vitest'
import { type FakeOllama, startFakeOllama } from '../src/testing/fake-ollama'
import { type OllamaContractOptions, ollamaContract } from '../src/testing/ollama-contract'

const realUrl = process.env.OLLAMA_CONTRACT_URL

if (realUrl) {
  // OLLAMA_CONTRACT_MODELS="chat=llama3.2:3b,thinking=qwen3:1.7b,embed=all-minilm:l6-v2": a role not named
  // is left out (its tests with it), so the suite never needs a model the user does not have
  const named = Object.fromEntries(
    (process.env.OLLAMA_CONTRACT_MODELS ?? '')
      .split(',')
      .map((kv) => kv.trim())
      .filter(Boolean)
      .map((kv) => {
        const at = kv.indexOf('=')
        return at < 0 ? [kv, ''] : [kv.slice(0, at).trim(), kv.slice(at + 1).trim()]
      }),
  ) as Record<string, string>
  const roles = ['thinking', 'embed', 'vision', 'slidingWindow', 'hybrid', 'mla', 'mlx', 'cloud'] as const
  const models: NonNullable<OllamaContractOptions['models']> = Object.fromEntries(
    roles.map((r) => [r, named[r] ?? '']),
  )
  models.chat = named.chat || (await firstCompletionModel(realUrl)) || 'llama3.2:3b'
  const num = (k: string) => (process.env[k] ? Number(process.env[k]) : undefined)
  describe(`Ollama at ${realUrl}`, () => {
    ollamaContract(test, {
      baseUrl: realUrl,
      models,
      server: {
        contextLength: num('OLLAMA_CONTEXT_LENGTH'),
        keepAliveSeconds: num('OLLAMA_CONTRACT_KEEP_ALIVE_SECONDS') ?? 300,
        noCloud: envBool(process.env.OLLAMA_NO_CLOUD),
        maxQueue: num('OLLAMA_CONTRACT_MAX_QUEUE'),
        tokensPerSecond: num('OLLAMA_CONTRACT_TOKENS_PER_SEC'),
        strictRegistry: process.env.OLLAMA_CONTRACT_STRICT_REGISTRY !== '0',
        // a real pull downloads; the Host check needs the server bound to loopback: both only when asked
        pulls: process.env.OLLAMA_CONTRACT_PULL === '1',
        boundToLoopback: process.env.OLLAMA_CONTRACT_LOOPBACK === '1',
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

/** envconfig.Bool: strconv.ParseBool after trimming spaces and quotes; set but unparsable is true. */
function envBool(value: string | undefined): boolean {
  const s = (value ?? '').trim().replace(/^["']+|["']+$/g, '')
  if (s === '') return false
  return !['0', 'f', 'F', 'false', 'FALSE', 'False'].includes(s)
}

/** The first local completion model /api/tags lists, one without thinking if there is one. */
async function firstCompletionModel(url: string): Promise<string | undefined> {
  try {
    const res = await fetch(`${url.replace(/\/+$/, '')}/api/tags`)
    const { models } = (await res.json()) as {
      models?: { name: string; capabilities?: string[]; remote_host?: string }[]
    }
    const local = (models ?? []).filter((x) => x.capabilities?.includes('completion') && !x.remote_host)
    // the chat role is a model without thinking (the suite checks that it refuses think:true)
    return (local.find((x) => !x.capabilities?.includes('thinking')) ?? local[0])?.name
  } catch {
    return undefined
  }
}

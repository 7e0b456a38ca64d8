import { readFileSync } from 'node:fs'
import { describe, expect, test, vi } from 'vitest'
import {
  clampKeepAlive,
  estimateFit,
  GATEWAY_ROUTES,
  type Hub,
  isSharedLLMError,
  keepAliveSeconds,
  kvCacheBytes,
  kvShapeFromModelInfo,
  needsVerboseShow,
  MiB,
  type ModelCatalog,
  type ModelInfo,
  modelAllowed,
  type Principal,
  type RunningModel,
} from '../src/index'
import { startHub } from './helpers'

const route = (path: string) => {
  const r = GATEWAY_ROUTES.get(path)
  if (!r) throw new Error(`no route ${path}`)
  return r
}
const CHAT = route('/ollama/api/chat')
const PULL = route('/ollama/api/pull')
const TAGS = route('/ollama/api/tags')

const fixture = (name: string) =>
  JSON.parse(readFileSync(new URL(`./fixtures/ollama/${name}`, import.meta.url), 'utf8'))
const tags = fixture('api-tags-16-models-local.json').models as ModelInfo[]
const show = fixture('api-show-dolphin3-8b-local-windows.json') as { model_info: Record<string, unknown> }

/** A catalog over the real captured tags; every model is shown with dolphin3's llama geometry. */
function catalog(running: RunningModel[] = []): ModelCatalog & { shows: number } {
  const c = {
    shows: 0,
    list: async () => tags,
    running: async () => running,
    show: async (_name: string) => {
      c.shows++
      return show
    },
  }
  return c
}

async function device(hub: Hub, roleId: string, allocationMb?: number): Promise<Principal> {
  const res = await hub.access.join({ name: `dev-${Math.random()}` }, `ip-${Math.random()}`)
  await hub.devices.approve(res.device_id, roleId)
  if (allocationMb !== undefined) await hub.devices.setAllocation(res.device_id, allocationMb)
  const { device_key } = await hub.access.claim(res.request_id, res.claim_secret, 'ip')
  const p = await hub.access.authenticate(device_key)
  if (!p) throw new Error('no principal')
  return p
}

async function rejection(p: Promise<unknown>) {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  )
  if (!isSharedLLMError(err)) throw new Error(`expected a rejection, got ${String(err)}`)
  return err
}

describe('fit estimate (fs/ggml/ggml.go GraphSize)', () => {
  const llama = show.model_info
  test('the worked example: an 8B llama needs 128 KiB of KV cache per token, 512 MiB at 4096', () => {
    const shape = kvShapeFromModelInfo(llama)
    expect(shape).toMatchObject({
      architecture: 'llama',
      layers: 32,
      keyLength: 128,
      valueLength: 128,
      heads: 32,
      embedding: 4096,
      vocab: 128258, // llama.vocab_size: the plain /api/show leaves the token list out
      trainedContext: 131072,
      guessed: [],
    })
    expect(shape?.kvHeads).toEqual(Array(32).fill(8))
    const fit = estimateFit(4_920_757_726, shape, 4096)
    expect(fit.kvBytes).toBe(512 * MiB)
    expect(fit.kvBytes! / 4096).toBe(128 * 1024)
    // The compute graph: max(4·batch·(embedding + vocab), 4·batch·(1 + 4·embedding + ctx·(1 + heads))).
    expect(fit.overheadBytes).toBe(Math.max(4 * 512 * (4096 + 128258), 4 * 512 * (1 + 4 * 4096 + 4096 * 33)))
    expect(fit.totalBytes).toBe(4_920_757_726 + 512 * MiB + fit.overheadBytes)
    expect(fit.conservative).toBe(false)
    expect(needsVerboseShow(llama)).toBe(false)
  })

  test('num_parallel multiplies the context, a q8_0 or q4_0 cache halves or quarters the KV', () => {
    const shape = kvShapeFromModelInfo(llama)!
    expect(kvCacheBytes(shape, { contextTokens: 4096, numParallel: 2 })).toBe(1024 * MiB)
    expect(kvCacheBytes(shape, { contextTokens: 4096, kvCacheType: 'q8_0' })).toBe(256 * MiB)
    expect(kvCacheBytes(shape, { contextTokens: 4096, kvCacheType: 'q4_0' })).toBe(128 * MiB)
  })

  test('gemma3: five of every six layers keep only the sliding window (+ batch)', () => {
    const gemma = {
      'general.architecture': 'gemma3',
      'gemma3.block_count': 34,
      'gemma3.attention.head_count': 8,
      'gemma3.attention.head_count_kv': 4,
      'gemma3.attention.key_length': 256,
      'gemma3.attention.value_length': 256,
      'gemma3.attention.sliding_window': 1024,
      'gemma3.embedding_length': 2560,
      'gemma3.context_length': 131072,
      'gemma3.vocab_size': 262144,
    }
    const shape = kvShapeFromModelInfo(gemma)!
    const perTokenLayer = 512 * 2 * 4 // (256 + 256) × f16 × 4 KV heads
    const global = 5 // layers 6, 12, 18, 24, 30
    const at = (ctx: number) => kvCacheBytes(shape, { contextTokens: ctx })
    expect(at(32768)).toBe(global * 32768 * perTokenLayer + (34 - global) * (1024 + 512) * perTokenLayer)
    // Far below the context × every layer the old estimate charged (5-6× at 32k-128k).
    expect(at(131072) / (131072 * 34 * perTokenLayer)).toBeLessThan(0.16)
  })

  test('per-layer head arrays (hybrid models) and MLA keys are read; recurrent layers hold their state', () => {
    const hybrid = kvShapeFromModelInfo({
      'general.architecture': 'x',
      'x.block_count': 4,
      'x.attention.head_count': [8, 8, 8, 8],
      'x.attention.head_count_kv': [0, 2, 0, 2],
      'x.embedding_length': 1024,
      'x.ssm.state_size': 16,
      'x.ssm.inner_size': 2048,
      'x.ssm.conv_kernel': 4,
      'x.ssm.group_count': 1,
      'x.vocab_size': 1000,
    })!
    const state = ((4 - 1) * (2048 + 2 * 16) + 16 * 2048) * 4
    expect(kvCacheBytes(hybrid, { contextTokens: 1000 })).toBe(2 * 1000 * 256 * 2 * 2 + 2 * state)
    // An MLA file (convert/convert_glm4moelite.go): key_length = kv_lora_rank + rope, value_length =
    // kv_lora_rank, one KV head; the _mla keys are the decompressed per-head sizes and not what is cached.
    const mla = kvShapeFromModelInfo({
      'general.architecture': 'deepseek2',
      'deepseek2.block_count': 2,
      'deepseek2.attention.head_count': 20,
      'deepseek2.attention.head_count_kv': 1,
      'deepseek2.attention.key_length': 576,
      'deepseek2.attention.value_length': 512,
      'deepseek2.attention.key_length_mla': 256,
      'deepseek2.attention.value_length_mla': 256,
      'deepseek2.attention.kv_lora_rank': 512,
      'deepseek2.embedding_length': 2048,
      'deepseek2.vocab_size': 154880,
    })!
    expect(mla.keyLength).toBe(576)
    expect(mla.valueLength).toBe(512)
    expect(kvCacheBytes(mla, { contextTokens: 100 })).toBe(2 * 100 * (576 + 512) * 2)
    // An older deepseek2 file (DeepSeek-Coder-V2-Lite as llama.cpp logs it): no _mla keys, 16 KV heads of
    // 192 + 128, which llama.cpp caches in full (K 324 MiB + V 216 MiB at 2048 tokens, 27 layers).
    const old = kvShapeFromModelInfo({
      'general.architecture': 'deepseek2',
      'deepseek2.block_count': 27,
      'deepseek2.attention.head_count': 16,
      'deepseek2.attention.head_count_kv': 16,
      'deepseek2.attention.key_length': 192,
      'deepseek2.attention.value_length': 128,
      'deepseek2.attention.kv_lora_rank': 512,
      'deepseek2.embedding_length': 2048,
      'deepseek2.vocab_size': 102400,
    })!
    expect(kvCacheBytes(old, { contextTokens: 2048 })).toBe(540 * MiB)
  })

  test('arrays the plain /api/show leaves null ask for a verbose one; a shape not read is conservative', () => {
    const partial = { ...llama, 'llama.attention.head_count_kv': null }
    expect(needsVerboseShow(partial)).toBe(true)
    expect(kvShapeFromModelInfo(partial)?.guessed).toEqual(['attention.head_count_kv'])
    expect(estimateFit(1000, kvShapeFromModelInfo(partial), 4096).conservative).toBe(true)
    expect(kvShapeFromModelInfo({ 'general.architecture': 'llama' })).toBeUndefined()
    expect(kvShapeFromModelInfo({ 'general.architecture': 'x', 'x.block_count': 'NaN' })).toBeUndefined()
    expect(kvShapeFromModelInfo(undefined)).toBeUndefined()
    const fit = estimateFit(1000, undefined, 4096)
    expect(fit.conservative).toBe(true)
    expect(Number.isFinite(fit.totalBytes)).toBe(true)
    // More than any known 8B shape would need at that context.
    expect(fit.totalBytes).toBeGreaterThan(estimateFit(1000, kvShapeFromModelInfo(llama), 4096).totalBytes)
  })

  test('key length falls back to embedding / heads', () => {
    expect(
      kvShapeFromModelInfo({
        'general.architecture': 'qwen2',
        'qwen2.block_count': 28,
        'qwen2.attention.head_count': 28,
        'qwen2.attention.head_count_kv': 4,
        'qwen2.embedding_length': 3584,
      }),
    ).toMatchObject({ layers: 28, kvHeads: Array(28).fill(4), keyLength: 128, valueLength: 128 })
  })
})

describe('model patterns', () => {
  test.each([
    [[], 'anything:7b', true],
    [['llama3'], 'llama3', true],
    [['llama3'], 'llama3:8b', true],
    [['llama3'], 'llama3.2:1b', false],
    [['llama3*'], 'llama3.2:1b', true],
    [['qwen2.5:0.5b'], 'qwen2.5:0.5b', true],
    [['qwen2.5:0.5b'], 'qwen2.5:7b', false],
    [['*:1b'], 'llama3.2:1b', true],
    [['Gemma3*'], 'gemma3:4b', true],
    [['gemma3:latest'], 'gemma3', true],
  ])('%j admits %s: %s', (patterns, model, expected) => {
    expect(modelAllowed(patterns, model)).toBe(expected)
  })
})

describe('keep_alive', () => {
  test.each([
    [300, 300],
    ['5m', 300],
    ['1h30m', 5400],
    ['300ms', 0.3],
    [-1, Number.POSITIVE_INFINITY],
    ['-1m', Number.POSITIVE_INFINITY],
    ['forever', undefined],
    [{}, undefined],
  ])('%j is %s seconds', (v, s) => {
    expect(keepAliveSeconds(v)).toBe(s)
  })

  test('always a number of seconds within the role maximum; absent is the maximum', () => {
    expect(clampKeepAlive('10m', 300)).toBe(300)
    expect(clampKeepAlive(-1, 300)).toBe(300)
    expect(clampKeepAlive('2m', 300)).toBe(120)
    // Ollama would answer a numeric string with a 400 (time.ParseDuration: missing unit).
    expect(clampKeepAlive('300', 3600)).toBe(300)
    expect(clampKeepAlive(undefined, 120)).toBe(120)
    // Absent: the maximum, never Ollama's own OLLAMA_KEEP_ALIVE (which may be forever).
    expect(clampKeepAlive(undefined, 3600)).toBe(3600)
    expect(clampKeepAlive('junk', 60)).toBe(60)
    expect(clampKeepAlive('10h', null)).toBe(36000)
    expect(clampKeepAlive('-1', null)).toBe(-1)
    expect(clampKeepAlive(undefined, null)).toBeUndefined()
  })
})

describe('gateway policy', () => {
  async function hubWith(cat: ModelCatalog) {
    const hub = await startHub({ capacityMb: () => 100_000 })
    ;(hub as unknown as { catalog: ModelCatalog }).catalog = cat
    return hub
  }

  test('a model that does not fit the allocation is refused with what it needs and what the device has', async () => {
    const hub = await hubWith(catalog())
    await hub.roles.update('role-user', { max_memory_mb: 4096 })
    const p = await device(hub, 'role-user') // 4096 MiB
    const err = await rejection(hub.policy.admit(p, CHAT, { model: 'dolphin3:8b' }))
    expect(err.code).toBe('FORBIDDEN')
    const need = Math.ceil(
      estimateFit(4_920_757_726, kvShapeFromModelInfo(show.model_info), 4096).totalBytes / MiB,
    )
    expect(err.message).toMatch(
      new RegExp(`needs about ${need} MiB at 4096 tokens of context but device '.*' has 4096 MiB`),
    )
    // A small model fits.
    const ok = await hub.policy.admit(p, CHAT, { model: 'qwen3:1.7b' })
    ok.release()
  })

  test('the context is clamped to the role maximum before estimating and forwarding', async () => {
    const hub = await hubWith(catalog())
    const user = await device(hub, 'role-user', 4096) // max_context_tokens 32768
    // 8192 tokens: 1 GiB of KV cache + 1.3 GB of weights fits 4 GiB; nothing to clamp.
    const small = await hub.policy.admit(user, CHAT, { model: 'qwen3:1.7b', options: { num_ctx: 8192 } })
    expect(small.outgoing.options).toEqual({ num_ctx: 8192 })
    small.release()
    // A million tokens is clamped to 32768, where the KV cache alone is 4 GiB: refused, naming the clamped context.
    const err = await rejection(
      hub.policy.admit(user, CHAT, { model: 'qwen3:1.7b', options: { num_ctx: 1_000_000 } }),
    )
    expect(err.message).toMatch(/at 32768 tokens of context/)
    // The admin role has no context clamp.
    const admin = await device(hub, 'role-admin', 16384)
    const big = await hub.policy.admit(admin, CHAT, { model: 'qwen3:1.7b', options: { num_ctx: 65536 } })
    expect(big.outgoing.options).toEqual({ num_ctx: 65536 })
    big.release()
  })

  test('the real size of a loaded model replaces the estimate only at the context it was loaded with', async () => {
    const [gemma] = fixture('api-ps-gemma3-full-vram-issue.json').models as RunningModel[]
    const ps = [{ ...gemma!, name: 'gemma3:4b', model: 'gemma3:4b', context_length: 4096 }]
    const hub = await hubWith(catalog(ps))
    expect(await hub.policy.estimate('gemma3:4b', 4096)).toMatchObject({
      source: 'loaded',
      totalBytes: 5964735424,
    })
    // Asked for more context, Ollama reloads it bigger: the loaded size says nothing about that.
    const big = await hub.policy.estimate('gemma3:4b', 32768)
    expect(big?.source).toBe('estimate')
    // No context_length in the list (older Ollama, or 0 while loading): not trusted either.
    const hub2 = await hubWith(catalog([{ ...ps[0]!, context_length: null }]))
    expect((await hub2.policy.estimate('gemma3:4b', 4096))?.source).toBe('estimate')
  })

  test('an MLX (safetensors) model: its /api/ps size is neither the load at its context nor a ratio; no head_dim is conservative', async () => {
    // The stand-in's entry: Qwen/Qwen3-0.6B config.json as x/server/show.go buildModelInfo shows it.
    const standin = JSON.parse(
      readFileSync(
        new URL('../testing-assets/fake-ollama/fixtures/models/catalog.json', import.meta.url),
        'utf8',
      ),
    ) as Array<{ name: string; size: number; details: ModelInfo['details']; show: { model_info: Json } }>
    type Json = Record<string, unknown>
    const mlx = standin.find((e) => e.name === 'qwen3-0.6b-mlx')!
    const name = 'qwen3-0.6b-mlx:latest'
    const row: ModelInfo = {
      ...tags[0]!,
      name,
      model: name,
      size: mlx.size,
      digest: 'a'.repeat(64),
      details: mlx.details,
    }
    const [gemma] = fixture('api-ps-gemma3-full-vram-issue.json').models as RunningModel[]
    const running: RunningModel[] = [
      { ...gemma!, name: 'gemma3:4b', model: 'gemma3:4b', context_length: 4096 },
      // x/mlxrunner/client.go MemorySize: the weights MLX holds, whatever num_ctx it was loaded with
      {
        ...gemma!,
        name,
        model: name,
        size: mlx.size,
        size_vram: mlx.size,
        digest: row.digest,
        context_length: 4096,
        details: mlx.details,
      },
    ]
    const cat: ModelCatalog = {
      list: async () => [...tags, row],
      running: async () => running,
      show: async (n: string) =>
        n === name ? { model_info: mlx.show.model_info, capabilities: ['completion'] } : show,
    }
    const hub = await hubWith(cat)
    const est = await hub.policy.estimate(name, 4096)
    expect(est).toMatchObject({ source: 'estimate', conservative: true })
    // 28 layers × 8 KV heads × (64 + 64) × f16 × 4096 on top of the weights, never the bare weights
    expect(est!.kvBytes).toBe(28 * 8 * 128 * 2 * 4096)
    expect(est!.totalBytes).toBeGreaterThan(mlx.size)
    hub.bus.emit('models_running', { models: running })
    const views = async () => hub.policy.modelViews()
    await vi.waitFor(async () =>
      expect((await views()).find((m) => m.name === 'gemma3:4b')?.measurement).not.toBeNull(),
    )
    expect((await views()).find((m) => m.name === name)?.measurement).toBeNull()
    // Loaded by someone else at 32k: a request for 2k runs at 32k there (no reload for MLX, sched.go
    // needsReload), so that is the context it is checked at; a request above it at its own.
    const at32k = await hubWith({ ...cat, running: async () => [{ ...running[1]!, context_length: 32768 }] })
    expect((await at32k.policy.estimate(name, 2048))?.contextTokens).toBe(32768)
    expect((await at32k.policy.estimate(name, 2048))?.kvBytes).toBe(28 * 8 * 128 * 2 * 32768)
    expect((await at32k.policy.estimate(name, 40960))?.contextTokens).toBe(40960)
    // A context_length of 0 (an MLX runner still loading) is "unknown", not a crash or a fit.
    const loading = await hubWith({ ...cat, running: async () => [{ ...running[1]!, context_length: null }] })
    expect((await loading.policy.estimate(name, 4096))?.source).toBe('estimate')
  })

  test('can it load now: against free memory, then with the idle loaded models Ollama would unload', async () => {
    const [captured] = fixture('api-ps-gemma3-full-vram-issue.json').models as RunningModel[] // 5688 MiB
    // Loaded at the default context under the name it has in the captured tags.
    const gemma = { ...captured!, name: 'gemma3:4b', model: 'gemma3:4b', context_length: 4096 }
    // A second loaded model, as if qwen3:1.7b were in memory too, at its tag size.
    const qwen = {
      ...gemma,
      name: 'qwen3:1.7b',
      model: 'qwen3:1.7b',
      size: 1359293444,
      size_vram: 1359293444,
    }
    const ps = [gemma, qwen]
    let freeMb: number | undefined = 8000
    const hub = await startHub({ capacityMb: () => 100_000, freeMb: () => freeMb })
    ;(hub as unknown as { catalog: ModelCatalog }).catalog = catalog(ps)
    const p = await device(hub, 'role-admin', 16384)
    const loadOf = async (name: string) => (await hub.policy.me(p)).models.find((m) => m.name === name)?.load
    const viewOf = async (name: string) => (await hub.policy.modelViews()).find((m) => m.name === name)?.load

    // dolphin3:8b needs about 5461 MiB at 4096 tokens.
    expect(await loadOf('dolphin3:8b')).toBe('free')
    expect(await viewOf('dolphin3:8b')).toBe('free')
    expect(await loadOf('gemma3:4b')).toBe('loaded')
    expect(await loadOf('qwen3:1.7b')).toBe('loaded')
    expect(await viewOf('qwen3:1.7b')).toBe('loaded')
    freeMb = 1000
    // 1000 MiB free plus gemma3's 5688 MiB, which nobody is using: Ollama unloads it and loads dolphin.
    expect(await loadOf('dolphin3:8b')).toBe('unloads_idle')
    // While a request holds gemma3, its memory is not coming back (1000 + qwen's 1296 MiB is too little).
    const holding = await hub.policy.admit(p, CHAT, { model: 'gemma3:4b' })
    expect(await loadOf('dolphin3:8b')).toBe('busy')
    expect(await viewOf('dolphin3:8b')).toBe('busy')
    holding.release()
    expect(await loadOf('dolphin3:8b')).toBe('unloads_idle')
    // A model that needs less than the free memory loads as it is.
    expect(await loadOf('deepseek-r1:1.5b')).toBe('unloads_idle')
    freeMb = 3000
    expect(await loadOf('deepseek-r1:1.5b')).toBe('free')
    // No memory reading: unknown, never a guess.
    freeMb = undefined
    expect(await loadOf('dolphin3:8b')).toBe('unknown')
  })

  test('models outside the role list are refused', async () => {
    const hub = await hubWith(catalog())
    const role = await hub.roles.create({ name: 'kids', max_memory_mb: 8000, allowed_models: ['qwen3*'] })
    const p = await device(hub, role.id)
    const err = await rejection(hub.policy.admit(p, CHAT, { model: 'mistral:7b' }))
    expect(err.code).toBe('FORBIDDEN')
    expect(err.message).toMatch(/role 'kids' may not use model 'mistral:7b'; allowed: qwen3\*/)
    ;(await hub.policy.admit(p, CHAT, { model: 'qwen3:1.7b' })).release()
  })

  test('concurrency: the guest gets one stream and two waiting (max_queued); release frees a slot', async () => {
    const hub = await hubWith(catalog())
    await hub.roles.update('role-guest', { max_memory_mb: 4096, requests_per_minute: 100 })
    const p = await device(hub, 'role-guest')
    const first = await hub.policy.admit(p, CHAT, { model: 'qwen3:1.7b' })
    const waiting = [
      await hub.policy.admit(p, CHAT, { model: 'qwen3:1.7b' }),
      await hub.policy.admit(p, CHAT, { model: 'qwen3:1.7b' }),
    ]
    const err = await rejection(hub.policy.admit(p, CHAT, { model: 'qwen3:1.7b' }))
    expect(err.code).toBe('RATE_LIMITED')
    expect(err.message).toMatch(/allows 1 request at a time \(max_concurrent\) and 2 waiting \(max_queued\)/)
    expect(err.details?.retry_after).toBe(1)
    for (const w of waiting) w.release()
    first.release()
    first.release() // idempotent
    ;(await hub.policy.admit(p, CHAT, { model: 'qwen3:1.7b' })).release()
    expect(hub.policy.activeStreams(p.kind === 'device' ? p.device.id : '')).toBe(0)
  })

  test('requests per minute: the 31st guest request in a minute is refused with Retry-After', async () => {
    const hub = await hubWith(catalog())
    const p = await device(hub, 'role-guest')
    for (let i = 0; i < 30; i++) (await hub.policy.admit(p, TAGS)).release()
    const err = await rejection(hub.policy.admit(p, TAGS))
    expect(err.code).toBe('RATE_LIMITED')
    expect(Number(err.details?.retry_after)).toBeGreaterThan(0)
    expect(hub.metrics.render(null, null)).toMatch(/sharedllm_rejections_total\{reason="rate_limit"\} 1/)
  })

  test('pull needs can_pull', async () => {
    const hub = await hubWith(catalog())
    const guest = await device(hub, 'role-guest')
    const err = await rejection(hub.policy.admit(guest, PULL, { model: 'llama3' }))
    expect(err.message).toBe("role 'guest' cannot pull models; ask the host to change your role")
    const user = await device(hub, 'role-user')
    ;(await hub.policy.admit(user, PULL, { model: 'llama3' })).release()
  })

  test('keep_alive is clamped to the role maximum', async () => {
    const hub = await hubWith(catalog())
    await hub.roles.update('role-guest', { max_memory_mb: 4096 })
    const guest = await device(hub, 'role-guest')
    const a = await hub.policy.admit(guest, CHAT, { model: 'qwen3:1.7b', keep_alive: '24h' })
    expect(a.outgoing.keep_alive).toBe(300)
    a.release()
  })

  test('bad num_ctx is a validation error', async () => {
    const hub = await hubWith(catalog())
    const p = await device(hub, 'role-user')
    expect(
      (await rejection(hub.policy.admit(p, CHAT, { model: 'qwen3:1.7b', options: { num_ctx: 'lots' } })))
        .code,
    ).toBe('VALIDATION')
  })

  test('a model whose shape cannot be read is estimated conservatively, and says so', async () => {
    const cat = { ...catalog(), show: async () => ({ model_info: { 'general.architecture': 'mystery' } }) }
    const hub = await hubWith(cat)
    const admin = await device(hub, 'role-admin', 16384)
    const me = await hub.policy.me(admin)
    const small = me.models.find((m) => m.name === 'qwen3:1.7b')
    expect(small).toMatchObject({ verdict: 'fits', conservative: true })
    const views = await hub.policy.modelViews()
    expect(views.find((v) => v.name === 'qwen3:1.7b')?.fits.every((f) => f.conservative)).toBe(true)
    const user = await device(hub, 'role-user', 4096)
    const err = await rejection(hub.policy.admit(user, CHAT, { model: 'dolphin3:8b' }))
    expect(err.message).toMatch(/estimated conservatively/)
  })

  test('show is asked once per model, not per request', async () => {
    const cat = catalog()
    const hub = await hubWith(cat)
    const p = await device(hub, 'role-admin', 16384)
    for (let i = 0; i < 5; i++) (await hub.policy.admit(p, CHAT, { model: 'dolphin3:8b' })).release()
    expect(cat.shows).toBe(1)
    // Parallel first requests for another model share one read too.
    const many = await Promise.all(
      Array.from({ length: 3 }, () => hub.policy.admit(p, CHAT, { model: 'mistral:7b' })),
    )
    for (const a of many) a.release()
    expect(cat.shows).toBe(2)
  })

  test('model views and /api/me verdicts; usage recorded and reported', async () => {
    const hub = await hubWith(catalog())
    const kids = await hub.roles.create({ name: 'kids', max_memory_mb: 65536, allowed_models: ['qwen3*'] })
    const views = await hub.policy.modelViews()
    expect(views).toHaveLength(16)
    const dolphin = views.find((m) => m.name === 'dolphin3:8b')
    expect(dolphin?.fits.find((f) => f.role_id === 'role-admin')?.verdict).toBe('fits')
    expect(dolphin?.fits.find((f) => f.role_id === 'role-guest')?.verdict).toBe('exceeds_allocation')
    // Outside the role's list: said so, whatever its size (it would fit the role's 64 GiB).
    const kidsFit = dolphin?.fits.find((f) => f.role_id === kids.id)
    expect(kidsFit).toMatchObject({ verdict: 'not_allowed', required_mb: expect.any(Number) })
    const qwen = views.find((m) => m.name === 'qwen3:1.7b')
    expect(qwen?.fits.find((f) => f.role_id === kids.id)?.verdict).toBe('fits')
    const p = await device(hub, 'role-user')
    // As the gateway records a finished request: through the batch recorder.
    hub.recorder.record({
      device_id: p.kind === 'device' ? p.device.id : null,
      model: 'qwen3:1.7b',
      endpoint: 'ollama:/api/chat',
      prompt_tokens: 12,
      completion_tokens: 34,
      duration_ms: 50,
      status: 200,
    })
    const me = await hub.policy.me(p)
    expect(me.usage).toEqual({ requests: 1, prompt_tokens: 12, completion_tokens: 34 })
    expect(me.models.find((m) => m.name === 'qwen3:1.7b')?.verdict).toBe('fits')
    expect(me.models.find((m) => m.name === 'dolphin3:8b')?.verdict).toBe('fits') // an 8B Q4 fits the user role's 8 GiB
    const report = await hub.policy.usageReport()
    expect(report.by_device_model[0]).toMatchObject({
      model: 'qwen3:1.7b',
      requests: 1,
      completion_tokens: 34,
    })
    // The gateway's tokens_total counter is kept where it records (QueueStage.record, gateway-queue.test).
  })
})

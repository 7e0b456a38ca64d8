import { readFileSync } from 'node:fs'
import { describe, expect, test } from 'vitest'
import {
  clampKeepAlive,
  estimateFit,
  GATEWAY_ROUTES,
  type Hub,
  isSharedLLMError,
  keepAliveSeconds,
  kvShapeFromModelInfo,
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

describe('fit estimate', () => {
  test('the worked example: an 8B llama needs 128 KiB of KV cache per token, 512 MiB at 4096', () => {
    const shape = kvShapeFromModelInfo(show.model_info)
    expect(shape).toEqual({ layers: 32, kvHeads: 8, keyLength: 128, valueLength: 128 })
    const fit = estimateFit(4_920_757_726, shape, 4096)
    expect(fit.kvBytes).toBe(512 * MiB)
    expect(fit.kvBytes! / 4096).toBe(128 * 1024)
    expect(fit.totalBytes).toBe(4_920_757_726 + 512 * MiB + fit.overheadBytes)
  })

  test('missing geometry gives weights + overhead, never NaN', () => {
    expect(kvShapeFromModelInfo({ 'general.architecture': 'llama' })).toBeUndefined()
    expect(kvShapeFromModelInfo({ 'general.architecture': 'x', 'x.block_count': 'NaN' })).toBeUndefined()
    expect(kvShapeFromModelInfo(undefined)).toBeUndefined()
    const fit = estimateFit(1000, undefined, 4096)
    expect(fit.kvBytes).toBeNull()
    expect(Number.isFinite(fit.totalBytes)).toBe(true)
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
    ).toEqual({ layers: 28, kvHeads: 4, keyLength: 128, valueLength: 128 })
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

  test('clamped to the role maximum; absent becomes the max when Ollama default is longer', () => {
    expect(clampKeepAlive('10m', 300)).toBe(300)
    expect(clampKeepAlive(-1, 300)).toBe(300)
    expect(clampKeepAlive('2m', 300)).toBe('2m')
    expect(clampKeepAlive(undefined, 120)).toBe(120)
    expect(clampKeepAlive(undefined, 3600)).toBeUndefined()
    expect(clampKeepAlive('junk', 60)).toBe(60)
    expect(clampKeepAlive('10h', null)).toBe('10h')
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
    expect(err.message).toMatch(/needs about 5461 MiB at 4096 tokens of context but device '.*' has 4096 MiB/)
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

  test('the real size of a loaded model replaces the estimate', async () => {
    const ps = fixture('api-ps-gemma3-full-vram-issue.json').models as RunningModel[]
    const hub = await hubWith(catalog(ps))
    const est = await hub.policy.estimate('gemma3', 4096)
    expect(est).toMatchObject({ source: 'loaded', totalBytes: 5964735424 })
  })

  test('can it load now: against free memory, then with the idle loaded models Ollama would unload', async () => {
    const [gemma] = fixture('api-ps-gemma3-full-vram-issue.json').models as RunningModel[] // 5688 MiB
    // A second loaded model, as if qwen3:1.7b were in memory too, at its tag size.
    const qwen = {
      ...gemma!,
      name: 'qwen3:1.7b',
      model: 'qwen3:1.7b',
      size: 1359293444,
      size_vram: 1359293444,
    }
    const ps = [gemma!, qwen]
    let freeMb: number | undefined = 8000
    const hub = await startHub({ capacityMb: () => 100_000, freeMb: () => freeMb })
    ;(hub as unknown as { catalog: ModelCatalog }).catalog = catalog(ps)
    const p = await device(hub, 'role-admin', 16384)
    const loadOf = async (name: string) => (await hub.policy.me(p)).models.find((m) => m.name === name)?.load
    const viewOf = async (name: string) => (await hub.policy.modelViews()).find((m) => m.name === name)?.load

    // dolphin3:8b needs about 5461 MiB at 4096 tokens.
    expect(await loadOf('dolphin3:8b')).toBe('free')
    expect(await viewOf('dolphin3:8b')).toBe('free')
    expect(await loadOf('gemma3:4b')).toBe('free')
    expect(await loadOf('qwen3:1.7b')).toBe('loaded')
    expect(await viewOf('qwen3:1.7b')).toBe('loaded')
    freeMb = 1000
    // 1000 MiB free plus gemma3's 5688 MiB, which nobody is using: Ollama unloads it and loads dolphin.
    expect(await loadOf('dolphin3:8b')).toBe('unloads_idle')
    // While a request holds gemma3, its memory is not coming back (1000 + qwen's 1296 MiB is too little).
    const holding = await hub.policy.admit(p, CHAT, { model: 'gemma3:latest' })
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

  test('show is asked once per model, not per request', async () => {
    const cat = catalog()
    const hub = await hubWith(cat)
    const p = await device(hub, 'role-admin', 16384)
    for (let i = 0; i < 5; i++) (await hub.policy.admit(p, CHAT, { model: 'dolphin3:8b' })).release()
    expect(cat.shows).toBe(1)
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
    const seen: unknown[] = []
    hub.on('usage', (u) => seen.push(u))
    await hub.policy.recordUsage({
      device_id: p.kind === 'device' ? p.device.id : null,
      model: 'qwen3:1.7b',
      endpoint: 'ollama:/api/chat',
      prompt_tokens: 12,
      completion_tokens: 34,
      duration_ms: 50,
      status: 200,
    })
    expect(seen).toHaveLength(1)
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
    expect(hub.metrics.render(null, null)).toMatch(
      /sharedllm_tokens_total\{device=".*",kind="completion",model="qwen3:1.7b"\} 34/,
    )
  })
})

import {
  defineProvider,
  EventBus,
  type EventMap,
  type MemoryProvider,
  type ProviderDeviceInput,
  ProviderSet,
  type ProviderSetOptions,
  silentLogger,
} from '@sharedllm/core'
import { createFakeHost } from '@sharedllm/core/testing'
import { afterEach, describe, expect, test } from 'vitest'

const MIB = 2 ** 20
const GIB = 2 ** 30

const device = (
  localId: string,
  kind: ProviderDeviceInput['kind'],
  totalGiB: number,
  usedGiB: number,
): ProviderDeviceInput => ({
  localId,
  name: localId,
  kind,
  totalBytes: totalGiB * GIB,
  usedBytes: usedGiB * GIB,
})

/** A provider whose next answer the test controls. */
function scripted(
  name: string,
  devices: ProviderDeviceInput[],
  extra: { priority?: number; supersedes?: string[]; available?: boolean } = {},
) {
  const state = {
    devices,
    mode: 'ok' as 'ok' | 'throw' | 'hang' | 'invalid' | 'slow',
    calls: 0,
    concurrent: 0,
    maxConcurrent: 0,
    closed: false,
  }
  const provider = defineProvider({
    name,
    priority: extra.priority ?? 0,
    supersedes: extra.supersedes,
    isAvailable: () => extra.available ?? true,
    async snapshot(_host, signal) {
      state.calls++
      state.concurrent++
      state.maxConcurrent = Math.max(state.maxConcurrent, state.concurrent)
      try {
        if (state.mode === 'throw') throw new Error(`${name} tool crashed`)
        if (state.mode === 'invalid') return [{ ...state.devices[0]!, usedBytes: Number.NaN }]
        if (state.mode === 'hang') {
          await new Promise<void>((resolve) => signal?.addEventListener('abort', () => resolve()))
          throw new Error('aborted')
        }
        if (state.mode === 'slow') await new Promise((r) => setTimeout(r, 60))
        return state.devices
      } finally {
        state.concurrent--
      }
    },
    close() {
      state.closed = true
    },
  })
  return { provider, state }
}

const sets: ProviderSet[] = []
afterEach(async () => {
  await Promise.all(sets.splice(0).map((s) => s.stop()))
})

function makeSet(providers: MemoryProvider[], over: Partial<ProviderSetOptions> = {}) {
  const bus = new EventBus()
  const events: { type: keyof EventMap; payload: unknown }[] = []
  bus.onAny((type, payload) => events.push({ type, payload }))
  const set = new ProviderSet({
    bus,
    log: silentLogger,
    host: createFakeHost(),
    providers,
    intervalMs: 60_000,
    timeoutMs: 200,
    hostReserveMb: () => 1024,
    allocatedMb: async () => 512,
    ...over,
  })
  sets.push(set)
  const errors = () =>
    events.filter((e) => e.type === 'provider_error').map((e) => e.payload as EventMap['provider_error'])
  return { set, bus, events, errors }
}

describe('ProviderSet', () => {
  test('start detects availability, samples once and emits memory_stats with every device and totals', async () => {
    const gpu = scripted('gpu', [device('0', 'dedicated', 24, 4), device('1', 'dedicated', 24, 0)], {
      priority: 30,
    })
    const ram = scripted('ram', [device('system', 'system', 64, 16)])
    const off = scripted('off', [], { available: false })
    const { set, events } = makeSet([ram.provider, gpu.provider, off.provider])
    expect(set.capacityMb()).toBeUndefined()
    expect(set.latest()).toBeNull()
    await set.start()
    const stats = set.latest()!
    expect(events.filter((e) => e.type === 'memory_stats')).toHaveLength(1)
    expect(stats.devices.map((d) => [d.id, d.provider, d.stale])).toEqual([
      ['gpu:0', 'gpu', false],
      ['gpu:1', 'gpu', false],
      ['ram:system', 'ram', false],
    ])
    // Primary devices are the GPUs: 48 GiB, minus the 1 GiB host reserve.
    expect(stats.totals).toEqual({
      capacityBytes: 47 * GIB,
      usedBytes: 4 * GIB,
      freeBytes: 44 * GIB,
      allocatedBytes: 512 * MIB,
      hostReserveBytes: 1024 * MIB,
    })
    expect(set.capacityMb()).toBe(47 * 1024)
    expect(set.states()).toEqual([
      { name: 'ram', available: true, active: true, lastError: null },
      { name: 'gpu', available: true, active: true, lastError: null },
      { name: 'off', available: false, active: false, lastError: null },
    ])
    expect(off.state.calls).toBe(0)
  })

  test('without GPUs the system RAM is primary; unified memory wins over RAM and is not counted twice', async () => {
    const ram = scripted('ram', [device('system', 'system', 16, 4)])
    const a = makeSet([ram.provider])
    await a.set.start()
    expect(a.set.capacityMb()).toBe(15 * 1024)
    const igpu = scripted('igpu', [device('0', 'unified', 16, 4)])
    const ram2 = scripted('ram', [device('system', 'system', 16, 4)])
    const b = makeSet([ram2.provider, igpu.provider], { hostReserveMb: () => 0 })
    await b.set.start()
    expect(b.set.capacityMb()).toBe(16 * 1024)
  })

  test('an iGPU sharing the RAM next to a discrete GPU does not add to capacity', async () => {
    const gpu = scripted('gpu', [device('0', 'dedicated', 8, 0)])
    const igpu = scripted('igpu', [device('0', 'unified', 32, 4)])
    const { set } = makeSet([gpu.provider, igpu.provider], { hostReserveMb: () => 0 })
    await set.start()
    expect(set.capacityMb()).toBe(8 * 1024)
  })

  test('capacity is floored at 0 and follows the current host reserve', async () => {
    let reserve = 1024
    const ram = scripted('ram', [device('system', 'system', 2, 1)])
    const { set } = makeSet([ram.provider], { hostReserveMb: () => reserve })
    await set.start()
    expect(set.capacityMb()).toBe(1024)
    reserve = 4096
    expect(set.capacityMb()).toBe(0)
  })

  test('supersedes: an available apple-like provider deactivates ram', async () => {
    const unified = scripted('apple', [device('unified', 'unified', 32, 8)], { supersedes: ['ram'] })
    const ram = scripted('ram', [device('system', 'system', 32, 8)])
    const { set } = makeSet([unified.provider, ram.provider])
    await set.start()
    expect(set.latest()!.devices.map((d) => d.id)).toEqual(['apple:unified'])
    expect(set.states().find((s) => s.name === 'ram')).toEqual({
      name: 'ram',
      available: true,
      active: false,
      lastError: null,
    })
    expect(ram.state.calls).toBe(0)
  })

  test('supersedes does nothing when the superseding provider is not available', async () => {
    const unified = scripted('apple', [], { supersedes: ['ram'], available: false })
    const ram = scripted('ram', [device('system', 'system', 32, 8)])
    const { set } = makeSet([unified.provider, ram.provider])
    await set.start()
    expect(set.latest()!.devices.map((d) => d.id)).toEqual(['ram:system'])
  })

  test('two providers with one name: the higher priority is kept', async () => {
    const builtin = scripted('nvidia', [device('a', 'dedicated', 8, 0)], { priority: 30 })
    const custom = scripted('nvidia', [device('b', 'dedicated', 8, 0)], { priority: 50 })
    const { set } = makeSet([builtin.provider, custom.provider])
    await set.start()
    expect(set.latest()!.devices.map((d) => d.id)).toEqual(['nvidia:b'])
  })

  test('a throwing provider yields provider_error and its last good value marked stale', async () => {
    const gpu = scripted('gpu', [device('0', 'dedicated', 8, 2)])
    const ram = scripted('ram', [device('system', 'system', 16, 4)])
    const { set, errors } = makeSet([gpu.provider, ram.provider])
    await set.start()
    gpu.state.mode = 'throw'
    const stats = await set.sample()
    expect(errors()).toEqual([
      { provider: 'gpu', message: "memory provider 'gpu' failed: gpu tool crashed", stale: true },
    ])
    expect(stats.devices.find((d) => d.id === 'gpu:0')).toMatchObject({ stale: true, usedBytes: 2 * GIB })
    expect(stats.devices.find((d) => d.id === 'ram:system')!.stale).toBe(false)
    expect(set.states()[0]!.lastError).toMatch(/gpu tool crashed/)
    gpu.state.mode = 'ok'
    const again = await set.sample()
    expect(again.devices.find((d) => d.id === 'gpu:0')!.stale).toBe(false)
    expect(set.states()[0]!.lastError).toBeNull()
  })

  test('a provider failing from the start reports stale: false and no device', async () => {
    const gpu = scripted('gpu', [device('0', 'dedicated', 8, 2)])
    gpu.state.mode = 'throw'
    const { set, errors } = makeSet([gpu.provider])
    await set.start()
    expect(errors()[0]!.stale).toBe(false)
    expect(set.latest()!.devices).toEqual([])
    expect(set.capacityMb()).toBeUndefined()
  })

  test('a hung provider times out, is aborted, and the sample still completes', async () => {
    const gpu = scripted('gpu', [device('0', 'dedicated', 8, 2)])
    const { set, errors } = makeSet([gpu.provider], { timeoutMs: 50 })
    await set.start()
    gpu.state.mode = 'hang'
    const started = Date.now()
    const stats = await set.sample()
    expect(Date.now() - started).toBeLessThan(1000)
    expect(errors()[0]).toEqual({
      provider: 'gpu',
      message: 'snapshot did not finish within 50 ms',
      stale: true,
    })
    expect(stats.devices[0]!.stale).toBe(true)
  })

  test('invalid data (NaN) is a provider error, never a NaN in the stats', async () => {
    const gpu = scripted('gpu', [device('0', 'dedicated', 8, 2)])
    const { set, errors } = makeSet([gpu.provider])
    await set.start()
    gpu.state.mode = 'invalid'
    const stats = await set.sample()
    expect(errors()[0]!.message).toMatch(/usedBytes is NaN/)
    expect(JSON.stringify([stats.devices, stats.totals])).not.toMatch(/null|NaN/)
    expect(stats.totals.usedBytes).toBe(2 * GIB)
  })

  test('an isAvailable that hangs counts as not available', async () => {
    const hung = defineProvider({
      name: 'hung',
      isAvailable: () => new Promise<boolean>(() => {}),
      snapshot: () => [],
    })
    const { set } = makeSet([hung], { availabilityTimeoutMs: 50 })
    await set.start()
    expect(set.states()[0]).toMatchObject({ available: false, active: false })
  })

  test('allocatedMb and hostReserveMb failures never break a sample', async () => {
    const ram = scripted('ram', [device('system', 'system', 16, 4)])
    const { set } = makeSet([ram.provider], {
      allocatedMb: async () => {
        throw new Error('db closed')
      },
      hostReserveMb: () => {
        throw new Error('settings not loaded')
      },
    })
    await set.start()
    expect(set.latest()!.totals).toMatchObject({
      allocatedBytes: 0,
      hostReserveBytes: 0,
      capacityBytes: 16 * GIB,
    })
  })

  test('the loop samples at the configured interval and never overlaps itself', async () => {
    const slow = scripted('slow', [device('0', 'dedicated', 8, 2)])
    slow.state.mode = 'slow' // 60 ms per snapshot, longer than the 20 ms interval
    const { set, events } = makeSet([slow.provider], { intervalMs: 20, timeoutMs: 500 })
    await set.start()
    // Callers asking while the loop samples share its sample instead of starting another.
    const [a, b] = await Promise.all([set.sample(), set.sample()])
    expect(a).toBe(b)
    await new Promise((r) => setTimeout(r, 400))
    await set.stop()
    const samples = events.filter((e) => e.type === 'memory_stats').length
    expect(slow.state.maxConcurrent).toBe(1)
    expect(samples).toBeGreaterThanOrEqual(4)
    expect(samples).toBeLessThanOrEqual(9)
    expect(slow.state.closed).toBe(true)
    const after = slow.state.calls
    await new Promise((r) => setTimeout(r, 100))
    expect(slow.state.calls).toBe(after)
  })

  test('rejects a non-positive interval', () => {
    expect(() => makeSet([], { intervalMs: 0 })).toThrow(/intervalMs/)
  })
})

import { defineProvider, isSharedLLMError, type ProviderDeviceInput, validateDevices } from '@sharedllm/core'
import { createFakeHost } from '@sharedllm/core/testing'
import { describe, expect, test } from 'vitest'

const dev = (over: Partial<ProviderDeviceInput> = {}): ProviderDeviceInput => ({
  localId: 'gpu0',
  name: 'Test GPU',
  kind: 'dedicated',
  totalBytes: 1000,
  usedBytes: 400,
  ...over,
})

describe('defineProvider', () => {
  test('fills defaults and stamps ids as vendor:localId', async () => {
    const p = defineProvider({ name: 'acme', snapshot: () => [dev(), dev({ localId: 'acme:gpu1' })] })
    expect(p.priority).toBe(0)
    expect(p.supersedes).toEqual([])
    expect(await p.isAvailable(createFakeHost())).toBe(true)
    expect(await p.snapshot(createFakeHost())).toEqual([
      {
        id: 'acme:gpu0',
        name: 'Test GPU',
        kind: 'dedicated',
        totalBytes: 1000,
        usedBytes: 400,
        freeBytes: 600,
      },
      {
        id: 'acme:gpu1',
        name: 'Test GPU',
        kind: 'dedicated',
        totalBytes: 1000,
        usedBytes: 400,
        freeBytes: 600,
      },
    ])
  })

  test.each([['NVIDIA'], [''], ['has space'], ['9lives'], [42]])('rejects the name %j', (name) => {
    expect(() => defineProvider({ name: name as string, snapshot: () => [] })).toThrow(/name .* is invalid/)
  })

  test('rejects a missing snapshot, a NaN priority and a self-supersede', () => {
    expect(() => defineProvider({ name: 'x' } as never)).toThrow(/no snapshot/)
    expect(() => defineProvider({ name: 'x', priority: Number.NaN, snapshot: () => [] })).toThrow(/priority/)
    expect(() => defineProvider({ name: 'x', supersedes: ['x'], snapshot: () => [] })).toThrow(/supersedes/)
  })

  test('isAvailable never throws and only a true result counts', async () => {
    const host = createFakeHost()
    const throwing = defineProvider({
      name: 'x',
      isAvailable: () => {
        throw new Error('boom')
      },
      snapshot: () => [],
    })
    const rejecting = defineProvider({
      name: 'x',
      isAvailable: () => Promise.reject(new Error('boom')),
      snapshot: () => [],
    })
    const truthy = defineProvider({ name: 'x', isAvailable: () => 'yes' as never, snapshot: () => [] })
    expect(await throwing.isAvailable(host)).toBe(false)
    expect(await rejecting.isAvailable(host)).toBe(false)
    expect(await truthy.isAvailable(host)).toBe(false)
  })

  test('a failing snapshot is PROVIDER_FAILED with the provider named and the cause kept', async () => {
    const cause = new Error('nvidia-smi crashed')
    const p = defineProvider({ name: 'acme', snapshot: () => Promise.reject(cause) })
    const err = await p.snapshot(createFakeHost()).catch((e: unknown) => e)
    expect(isSharedLLMError(err, 'PROVIDER_FAILED')).toBe(true)
    expect((err as Error).message).toBe("memory provider 'acme' failed: nvidia-smi crashed")
    expect((err as Error).cause).toBe(cause)
    expect((err as { details: unknown }).details).toEqual({ provider: 'acme' })
  })

  test('an aborted snapshot is CANCELLED', async () => {
    const p = defineProvider({ name: 'acme', snapshot: () => [dev()] })
    const c = new AbortController()
    c.abort()
    await expect(p.snapshot(createFakeHost(), c.signal)).rejects.toMatchObject({ code: 'CANCELLED' })
  })

  test('close errors are wrapped too', async () => {
    const p = defineProvider({
      name: 'acme',
      snapshot: () => [],
      close: () => {
        throw new Error('stuck')
      },
    })
    await expect(p.close?.()).rejects.toMatchObject({ code: 'PROVIDER_FAILED' })
  })
})

describe('byte counts are validated', () => {
  test.each([
    ['NaN total', { totalBytes: Number.NaN }, /totalBytes is NaN/],
    ['negative used', { usedBytes: -1 }, /usedBytes is -1/],
    ['fractional free', { freeBytes: 1.5 }, /freeBytes is 1.5/],
    ['infinite total', { totalBytes: Number.POSITIVE_INFINITY }, /totalBytes is Infinity/],
    ['string total', { totalBytes: '1000' as never }, /totalBytes is 1000/],
    ['used above total', { usedBytes: 1001 }, /uses 1001 bytes of 1000/],
    ['free above total', { freeBytes: 1001 }, /1001 bytes free of 1000/],
    ['unknown kind', { kind: 'vram' as never }, /kind "vram"/],
    ['empty localId', { localId: ' ' }, /no localId/],
    ['empty name', { name: '' }, /has no name/],
  ])('%s is a PROVIDER_FAILED error', async (_what, over, message) => {
    const p = defineProvider({ name: 'acme', snapshot: () => [dev(over)] })
    const err = await p.snapshot(createFakeHost()).catch((e: unknown) => e)
    expect(isSharedLLMError(err, 'PROVIDER_FAILED')).toBe(true)
    expect((err as Error).message).toMatch(message)
  })

  test('duplicate ids and a non-array result are rejected', () => {
    expect(() => validateDevices('acme', [dev(), dev()])).toThrow(/appears twice/)
    expect(() => validateDevices('acme', { devices: [] })).toThrow(/must return an array/)
  })
})

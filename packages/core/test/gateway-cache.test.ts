import { expect, it } from 'vitest'
import { SharedCache } from '../src/index'

it('one refresh in flight at a time, awaited by every concurrent caller; a failure is not kept', async () => {
  let now = 0
  let loads = 0
  let fail = false
  let release: (() => void) | undefined
  const cache = new SharedCache(
    async () => {
      loads++
      await new Promise<void>((r) => {
        release = r
      })
      if (fail) throw new Error('down')
      return loads
    },
    5000,
    () => now,
  )
  const first = Array.from({ length: 32 }, () => cache.get())
  release?.()
  expect(await Promise.all(first)).toEqual(Array(32).fill(1))
  expect(loads).toBe(1)
  // Fresh: served from the cache; expired: one more load for all.
  expect(await cache.get()).toBe(1)
  now = 6000
  const second = Array.from({ length: 32 }, () => cache.get())
  release?.()
  expect(new Set(await Promise.all(second))).toEqual(new Set([2]))
  expect(loads).toBe(2)
  now = 12_000
  fail = true
  const failing = Array.from({ length: 4 }, () => cache.get())
  release?.()
  for (const r of await Promise.allSettled(failing)) expect(r.status).toBe('rejected')
  expect(loads).toBe(3)
  fail = false
  const after = cache.get()
  release?.()
  expect(await after).toBe(4)
})

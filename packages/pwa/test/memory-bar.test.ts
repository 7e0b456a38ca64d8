import type { MemoryStats } from '@sharedllm/core/protocol'
import { mount } from '@vue/test-utils'
import { describe, expect, it } from 'vitest'
import MemoryBar from '../src/components/MemoryBar.vue'
import { barSegments, deviceBars } from '../src/lib/memory'

const GiB = 1024 ** 3

describe('barSegments', () => {
  it('lays out used, allocated beyond use, reserve and free, summing to the total', () => {
    const s = barSegments({ total: 24 * GiB, used: 6 * GiB, allocated: 10 * GiB, reserve: 2 * GiB })
    expect(s).toEqual({
      total: 24 * GiB,
      used: 6 * GiB,
      allocated: 4 * GiB,
      reserve: 2 * GiB,
      free: 12 * GiB,
    })
  })
  it('clips an overcommitted host so the bar never overflows', () => {
    const s = barSegments({ total: 8 * GiB, used: 7 * GiB, allocated: 12 * GiB, reserve: 2 * GiB })
    expect(s.used + s.allocated + s.reserve + s.free).toBe(8 * GiB)
    expect(s).toMatchObject({ used: 7 * GiB, allocated: 1 * GiB, reserve: 0, free: 0 })
  })
})

describe('deviceBars', () => {
  const stats: MemoryStats = {
    at: 1,
    providers: [
      { name: 'nvidia', available: true, active: true, lastError: null },
      { name: 'ram', available: true, active: true, lastError: null },
    ],
    devices: [
      {
        id: 'nvidia:0',
        name: 'RTX 4090',
        kind: 'dedicated',
        provider: 'nvidia',
        totalBytes: 24 * GiB,
        usedBytes: 2 * GiB,
        freeBytes: 22 * GiB,
        stale: false,
        sampledAt: 1,
      },
      {
        id: 'nvidia:1',
        name: 'RTX 3060',
        kind: 'dedicated',
        provider: 'nvidia',
        totalBytes: 12 * GiB,
        usedBytes: 0,
        freeBytes: 12 * GiB,
        stale: true,
        sampledAt: 1,
      },
      {
        id: 'ram:system',
        name: 'System RAM',
        kind: 'system',
        provider: 'ram',
        totalBytes: 64 * GiB,
        usedBytes: 10 * GiB,
        freeBytes: 54 * GiB,
        stale: false,
        sampledAt: 1,
      },
    ],
    totals: {
      capacityBytes: 33 * GiB,
      usedBytes: 2 * GiB,
      freeBytes: 31 * GiB,
      allocatedBytes: 9 * GiB,
      hostReserveBytes: 3 * GiB,
    },
  }
  it('splits the host-wide allocation and reserve over the GPUs by size and leaves RAM out of them', () => {
    const [a, b, ram] = deviceBars(stats)
    expect(a!.segments).toMatchObject({ used: 2 * GiB, allocated: 4 * GiB, reserve: 2 * GiB })
    expect(b!.segments).toMatchObject({ used: 0, allocated: 3 * GiB, reserve: 1 * GiB })
    expect(ram!.segments).toMatchObject({ used: 10 * GiB, allocated: 0, reserve: 0, free: 54 * GiB })
  })
})

describe('MemoryBar', () => {
  it('draws each segment as its share of the total and labels it in the legend', () => {
    const segments = barSegments({ total: 16 * GiB, used: 4 * GiB, allocated: 8 * GiB, reserve: 2 * GiB })
    const w = mount(MemoryBar, { props: { label: 'RTX 4090', segments } })
    const width = (k: string) => (w.get(`[data-segment="${k}"]`).element as HTMLElement).style.width
    expect(width('used')).toBe('25.00%')
    expect(width('allocated')).toBe('25.00%')
    expect(width('reserve')).toBe('12.50%')
    expect(width('free')).toBe('37.50%')
    expect(w.get('[data-legend="allocated"]').text()).toContain('4 GiB')
    expect(w.get('[data-legend="free"]').text()).toContain('6 GiB')
    expect(w.text()).toContain('RTX 4090')
    expect(w.get('.track').attributes('aria-label')).toContain('Used 4 GiB')
  })
  it('marks a stale reading', () => {
    const segments = barSegments({ total: GiB, used: 0, allocated: 0, reserve: 0 })
    const w = mount(MemoryBar, { props: { label: 'x', segments, stale: true } })
    expect(w.classes()).toContain('stale')
    expect(w.text()).toContain('stale')
  })
})

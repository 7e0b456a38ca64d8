import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import {
  BUILTIN_PROVIDER_PACKAGES,
  createRealHost,
  EventBus,
  type EventMap,
  loadProviders,
  ProviderSet,
  silentLogger,
} from '@sharedllm/core'
import { expect, test } from 'vitest'

// The acceptance check of the memory-provider work: on a Linux machine without a GPU, a set started with all
// five built-in providers and the real host reports exactly system RAM, matching /proc/meminfo.
const linuxWithoutGpu = process.platform === 'linux' && !hasGpu()

function hasGpu(): boolean {
  try {
    readFileSync('/dev/nvidiactl')
    return true
  } catch {}
  try {
    return readFileSync('/proc/driver/nvidia/version', 'utf8').length > 0
  } catch {}
  return false
}

function meminfoKiB(key: string): number {
  const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(readFileSync('/proc/meminfo', 'utf8'))
  return Number(m![1])
}

test.skipIf(!linuxWithoutGpu)(
  'this Linux machine without a GPU: one device, system RAM, others not available',
  async () => {
    const providers = await loadProviders(BUILTIN_PROVIDER_PACKAGES, {
      resolveFrom: [fileURLToPath(new URL('../../server-express/', import.meta.url))],
      conditions: ['@sharedllm/source', 'import', 'default'],
    })
    expect(providers).toHaveLength(5)
    const bus = new EventBus()
    const errors: EventMap['provider_error'][] = []
    bus.on('provider_error', (e) => errors.push(e))
    const set = new ProviderSet({
      bus,
      log: silentLogger,
      host: createRealHost(),
      providers,
      intervalMs: 60_000,
      hostReserveMb: () => 2048,
      allocatedMb: async () => 0,
    })
    try {
      await set.start()
      const stats = set.latest()!
      expect(stats.devices.map((d) => [d.id, d.kind, d.stale])).toEqual([['ram:system', 'system', false]])
      expect(set.states()).toEqual([
        { name: 'nvidia', available: false, active: false, lastError: null },
        { name: 'amd', available: false, active: false, lastError: null },
        { name: 'apple', available: false, active: false, lastError: null },
        { name: 'intel', available: false, active: false, lastError: null },
        { name: 'ram', available: true, active: true, lastError: null },
      ])
      expect(errors).toEqual([])
      const ram = stats.devices[0]!
      expect(ram.totalBytes).toBe(meminfoKiB('MemTotal') * 1024)
      // MemAvailable moves between two reads; within 256 MiB of a fresh read.
      expect(Math.abs(ram.freeBytes - meminfoKiB('MemAvailable') * 1024)).toBeLessThan(256 * 2 ** 20)
      expect(stats.totals.capacityBytes).toBe(ram.totalBytes - 2048 * 2 ** 20)
      expect(set.capacityMb()).toBe(Math.floor(ram.totalBytes / 2 ** 20) - 2048)
    } finally {
      await set.stop()
    }
  },
)

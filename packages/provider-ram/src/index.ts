import { defineProvider, type MemoryProvider } from '@sharedllm/core'
import { parseMeminfo } from './parse'

export * from './parse'

const MEMINFO = '/proc/meminfo'

/**
 * System RAM: `/proc/meminfo` on Linux (MemAvailable counts reclaimable cache as free, unlike `MemFree`),
 * the OS totals elsewhere. Superseded by `apple` on Apple Silicon, where the RAM is the GPU's memory.
 */
export function createRamProvider(): MemoryProvider {
  return defineProvider({
    name: 'ram',
    priority: 0,
    async isAvailable(host) {
      if (host.platform === 'linux') return parseMeminfo(await host.readFile(MEMINFO)).totalBytes > 0
      return host.totalMemBytes() > 0
    },
    async snapshot(host, signal) {
      let total: number
      let free: number
      if (host.platform === 'linux') {
        const m = parseMeminfo(await host.readFile(MEMINFO))
        total = m.totalBytes
        free = m.availableBytes
      } else {
        total = host.totalMemBytes()
        free = Math.min(host.freeMemBytes(), total)
      }
      signal?.throwIfAborted()
      return [
        {
          localId: 'system',
          name: 'System RAM',
          kind: 'system',
          totalBytes: total,
          usedBytes: total - free,
          freeBytes: free,
        },
      ]
    },
  })
}

export const provider: MemoryProvider = createRamProvider()
export default provider

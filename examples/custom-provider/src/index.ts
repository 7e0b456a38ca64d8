import { defineProvider, type MemoryProvider } from '@sharedllm/core'

/**
 * A memory pool the machine cannot report itself (an eGPU box, a remote accelerator), described by a JSON
 * file that some other tool keeps up to date:
 * `{ "devices": [{ "id": "box0", "name": "eGPU box", "totalMiB": 24576, "usedMiB": 1024 }] }`.
 */
export const DEFAULT_FILE = '/etc/sharedllm/pools.json'

interface PoolFile {
  devices: { id: string; name: string; totalMiB: number; usedMiB: number }[]
}

export function parsePools(text: string): PoolFile['devices'] {
  const data = JSON.parse(text) as Partial<PoolFile>
  if (!Array.isArray(data.devices)) throw new Error('pools file has no "devices" array')
  return data.devices
}

export function createPoolProvider(file = process.env.SHAREDLLM_POOLS_FILE ?? DEFAULT_FILE): MemoryProvider {
  return defineProvider({
    name: 'pools',
    priority: 40,
    async isAvailable(host) {
      return parsePools(await host.readFile(file)).length > 0
    },
    async snapshot(host) {
      // defineProvider validates the numbers: a NaN or a used > total here becomes a provider error.
      return parsePools(await host.readFile(file)).map((d) => ({
        localId: d.id,
        name: d.name,
        kind: 'dedicated' as const,
        totalBytes: d.totalMiB * 1024 * 1024,
        usedBytes: d.usedMiB * 1024 * 1024,
      }))
    },
  })
}

export default createPoolProvider

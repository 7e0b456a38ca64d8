import type { MemoryDeviceReading, MemoryTotals } from '../protocol/types'

export const MIB = 1024 * 1024

/**
 * The devices that bound what models can use: dedicated GPU memory when there is any, because Ollama places
 * models there; else unified memory (Apple Silicon, GB10, Jetson, AMD APUs, Intel iGPUs), which is the RAM
 * itself; else system RAM, because Ollama then runs on the CPU. Only one class counts, so memory that is
 * both an iGPU pool and the RAM is never counted twice, and an iGPU sharing the RAM (Intel or AMD next to
 * a discrete card) does not inflate the capacity of the discrete GPUs.
 */
export function primaryDevices(devices: readonly MemoryDeviceReading[]): MemoryDeviceReading[] {
  for (const kind of ['dedicated', 'unified', 'system'] as const) {
    const found = devices.filter((d) => d.kind === kind)
    if (found.length > 0) return found
  }
  return []
}

/**
 * Totals over the primary devices: capacity = their total minus the host reserve, floored at 0; used and
 * free are their sums; allocated is what devices were given (all in bytes).
 */
export function computeTotals(
  devices: readonly MemoryDeviceReading[],
  hostReserveBytes: number,
  allocatedBytes: number,
): MemoryTotals {
  const primary = primaryDevices(devices)
  let total = 0
  let used = 0
  let free = 0
  for (const d of primary) {
    total += d.totalBytes
    used += d.usedBytes
    free += d.freeBytes
  }
  return {
    capacityBytes: Math.max(0, total - hostReserveBytes),
    usedBytes: used,
    freeBytes: free,
    allocatedBytes,
    hostReserveBytes,
  }
}

import type { MemoryDeviceReading, MemoryStats } from '@sharedllm/core/protocol'

/** What one memory bar shows, in bytes. Segments are laid out in this order and never exceed `total`. */
export interface BarSegments {
  total: number
  /** Actually in use now (loaded models, other processes). */
  used: number
  /** Promised to devices but not in use yet. */
  allocated: number
  reserve: number
  free: number
}

/**
 * Lays out a bar: what is used, then what is allocated beyond that, then the host reserve, then the rest.
 * Overcommitted inputs are clipped in that order so the bar never overflows.
 */
export function barSegments(input: {
  total: number
  used: number
  allocated: number
  reserve: number
}): BarSegments {
  const total = Math.max(0, input.total)
  const used = clamp(input.used, 0, total)
  const allocated = clamp(input.allocated - used, 0, total - used)
  const reserve = clamp(input.reserve, 0, total - used - allocated)
  return { total, used, allocated, reserve, free: total - used - allocated - reserve }
}

/**
 * The devices that count toward the host's capacity: GPUs and unified memory when there are any, the
 * system RAM only when nothing else is available.
 */
export function primaryDevices(stats: MemoryStats): MemoryDeviceReading[] {
  const active = new Set(stats.providers.filter((p) => p.active).map((p) => p.name))
  const usable = stats.devices.filter((d) => active.size === 0 || active.has(d.provider))
  const accel = usable.filter((d) => d.kind !== 'system')
  return accel.length > 0 ? accel : usable
}

/**
 * One bar per provider device. The allocation and reserve are host-wide, so a primary device carries its
 * share of them in proportion to its size; a non-primary device (RAM next to a GPU) shows only its use.
 */
export function deviceBars(stats: MemoryStats): { device: MemoryDeviceReading; segments: BarSegments }[] {
  const primary = primaryDevices(stats)
  const primaryTotal = primary.reduce((s, d) => s + d.totalBytes, 0)
  return stats.devices.map((device) => {
    const share = primary.includes(device) && primaryTotal > 0 ? device.totalBytes / primaryTotal : 0
    return {
      device,
      segments: barSegments({
        total: device.totalBytes,
        used: device.usedBytes,
        allocated: stats.totals.allocatedBytes * share,
        reserve: stats.totals.hostReserveBytes * share,
      }),
    }
  })
}

const clamp = (v: number, lo: number, hi: number) => Math.min(Math.max(v, lo), Math.max(lo, hi))

/** Pure parser for Linux `/proc/meminfo`. */

export interface MeminfoReading {
  totalBytes: number
  /** What can be given to new work without swapping. */
  availableBytes: number
  /** `MemAvailable` (kernel 3.14+), or the older estimate `MemFree + Buffers + Cached`. */
  source: 'MemAvailable' | 'MemFree+Buffers+Cached'
}

/** `Key:   123 kB` lines to bytes (values in kB are KiB); count lines such as `HugePages_Total` stay counts. */
export function parseMeminfoFields(text: string): Map<string, number> {
  const fields = new Map<string, number>()
  for (const line of text.split('\n')) {
    const m = /^([A-Za-z0-9_()]+):\s+(\d+)(?:\s+(kB))?\s*$/.exec(line)
    if (m) fields.set(m[1]!, Number(m[2]) * (m[3] ? 1024 : 1))
  }
  return fields
}

export function parseMeminfo(text: string): MeminfoReading {
  const f = parseMeminfoFields(text)
  const total = f.get('MemTotal')
  if (total === undefined || total <= 0) throw new Error('/proc/meminfo has no MemTotal line')
  const available = f.get('MemAvailable')
  if (available !== undefined)
    return { totalBytes: total, availableBytes: Math.min(available, total), source: 'MemAvailable' }
  const free = f.get('MemFree')
  if (free === undefined) throw new Error('/proc/meminfo has neither MemAvailable nor MemFree')
  const estimate = free + (f.get('Buffers') ?? 0) + (f.get('Cached') ?? 0)
  return { totalBytes: total, availableBytes: Math.min(estimate, total), source: 'MemFree+Buffers+Cached' }
}

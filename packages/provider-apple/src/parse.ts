/** Pure parsers for macOS `sysctl` and `vm_stat` output. */

/** `name: value` lines (`sysctl hw.memsize machdep.cpu.brand_string`) to a map. */
export function parseSysctl(text: string): Map<string, string> {
  const out = new Map<string, string>()
  for (const line of text.split('\n')) {
    const m = /^([A-Za-z0-9_.]+):\s?(.*)$/.exec(line.trimEnd())
    if (m) out.set(m[1]!, m[2]!.trim())
  }
  return out
}

/** `hw.memsize` in bytes: the physical RAM, which Apple Silicon's GPU shares. */
export function memsizeBytes(sysctl: Map<string, string>): number {
  const raw = sysctl.get('hw.memsize')
  if (raw === undefined) throw new Error('sysctl printed no hw.memsize')
  if (!/^\d+$/.test(raw)) throw new Error(`sysctl hw.memsize is '${raw}', not a byte count`)
  const n = Number(raw)
  if (!Number.isSafeInteger(n) || n <= 0) throw new Error(`sysctl hw.memsize is '${raw}'`)
  return n
}

export interface VmStat {
  /** From the header, `(page size of 16384 bytes)`: 16 KiB on Apple Silicon, 4 KiB on Intel Macs. */
  pageSize: number
  /** Page counts by label, quotes removed (`Pages free`, `Anonymous pages`, `Translation faults`). */
  pages: Map<string, number>
}

export function parseVmStat(text: string): VmStat {
  const header = /page size of (\d+) bytes/.exec(text)
  if (!header) throw new Error('vm_stat printed no page size header')
  const pages = new Map<string, number>()
  for (const line of text.split('\n')) {
    const m = /^"?([^":]+)"?:\s+(\d+)\.?\s*$/.exec(line)
    if (m) pages.set(m[1]!.trim(), Number(m[2]))
  }
  return { pageSize: Number(header[1]), pages }
}

/**
 * Used memory as Activity Monitor counts it: app memory (anonymous pages minus purgeable) + wired +
 * compressed (pages occupied by the compressor). File cache is not "used": macOS drops it on demand.
 * Older vm_stat without `Anonymous pages` falls back to active + wired + compressed. Capped at `totalBytes`.
 */
export function usedBytes(vm: VmStat, totalBytes: number): number {
  const get = (k: string): number => {
    const v = vm.pages.get(k)
    if (v === undefined) throw new Error(`vm_stat printed no '${k}' line`)
    return v
  }
  const wired = get('Pages wired down')
  const compressed = vm.pages.get('Pages occupied by compressor') ?? 0
  const anonymous = vm.pages.get('Anonymous pages')
  const app =
    anonymous !== undefined
      ? Math.max(0, anonymous - (vm.pages.get('Pages purgeable') ?? 0))
      : get('Pages active')
  return Math.min(totalBytes, (app + wired + compressed) * vm.pageSize)
}

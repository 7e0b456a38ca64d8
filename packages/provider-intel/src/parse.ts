/** Pure helpers for Intel GPUs under /sys/class/drm (i915 and xe drivers). */

export interface IntelCard {
  card: string
  driver: 'i915' | 'xe'
  /** PCI address from uevent (`0000:00:02.0`), else the card name. */
  id: string
  pciId: string | null
  /** Local memory in bytes (discrete Arc cards), or null where the driver publishes none (iGPUs). */
  vramTotal: number | null
  /** Free local memory where the driver publishes it (i915 `lmem_avail_bytes`), else null. */
  vramAvail: number | null
}

/** `KEY=value` lines of a sysfs `uevent` file. */
export function parseUevent(text: string): Map<string, string> {
  const out = new Map<string, string>()
  for (const line of text.split('\n')) {
    const i = line.indexOf('=')
    if (i > 0) out.set(line.slice(0, i).trim(), line.slice(i + 1).trim())
  }
  return out
}

export function parseBytes(raw: string | undefined, what: string): number | null {
  if (raw === undefined) return null
  const t = raw.trim()
  if (!/^\d+$/.test(t)) throw new Error(`${what} is '${t}', not a byte count`)
  return Number(t)
}

export interface IntelCardFiles {
  vendor?: string
  uevent?: string
  /** xe: `device/tileN/physical_vram_size_bytes` of every tile. */
  tileVram?: (string | undefined)[]
  /** i915 (Intel's DKMS backport): `cardN/lmem_total_bytes`. */
  lmemTotal?: string
  /** i915 (DKMS): `cardN/lmem_avail_bytes`. */
  lmemAvail?: string
}

/** An Intel (vendor 0x8086) card on the i915 or xe driver, or undefined for anything else. */
export function parseIntelCard(card: string, f: IntelCardFiles): IntelCard | undefined {
  if (f.vendor?.trim().toLowerCase() !== '0x8086') return undefined
  const ev = parseUevent(f.uevent ?? '')
  const driver = ev.get('DRIVER')
  if (driver !== 'i915' && driver !== 'xe') return undefined
  const tiles = (f.tileVram ?? []).map((t, i) => parseBytes(t, `${card} tile${i} physical_vram_size_bytes`))
  const tileSum = tiles.some((t) => t !== null) ? tiles.reduce<number>((n, t) => n + (t ?? 0), 0) : null
  const vramTotal = parseBytes(f.lmemTotal, `${card} lmem_total_bytes`) ?? tileSum
  return {
    card,
    driver,
    id: ev.get('PCI_SLOT_NAME') ?? card,
    pciId: ev.get('PCI_ID') ?? null,
    vramTotal: vramTotal !== null && vramTotal > 0 ? vramTotal : null,
    vramAvail: parseBytes(f.lmemAvail, `${card} lmem_avail_bytes`),
  }
}

export interface IntelDevice {
  localId: string
  name: string
  kind: 'dedicated' | 'unified'
  totalBytes: number
  usedBytes: number
}

/**
 * A card to a device. With local memory (Arc on xe or DKMS i915) it is `dedicated`; used comes from
 * `lmem_avail_bytes` when published, and is 0 otherwise because neither mainline i915 nor xe publishes VRAM
 * usage in sysfs. Without local memory it is an iGPU: i915/xe allocate its buffers from system RAM (shmem)
 * with no fixed carve-out, so it is a `unified` device whose totals are the host's RAM totals.
 */
export function toDevice(c: IntelCard, ram: { totalBytes: number; freeBytes: number }): IntelDevice {
  const label = `Intel GPU${c.pciId ? ` ${c.pciId}` : ''} (${c.driver})`
  if (c.vramTotal !== null) {
    const avail = c.vramAvail === null ? c.vramTotal : Math.min(c.vramAvail, c.vramTotal)
    return {
      localId: c.id,
      name: label,
      kind: 'dedicated',
      totalBytes: c.vramTotal,
      usedBytes: c.vramTotal - avail,
    }
  }
  const free = Math.min(ram.freeBytes, ram.totalBytes)
  return {
    localId: c.id,
    name: `${label}, shared memory`,
    kind: 'unified',
    totalBytes: ram.totalBytes,
    usedBytes: ram.totalBytes - free,
  }
}

/** Pure parsers for rocm-smi output (JSON, CSV, plain text) and amdgpu sysfs files. */

export interface AmdCard {
  /** `card0`, or `GPU[0]` in plain text. */
  card: string
  /** Stable id: the unique id, else the PCI bus address, else the card name. */
  id: string
  name: string
  vramTotal: number
  vramUsed: number | null
  gttTotal: number | null
  gttUsed: number | null
}

const GIB = 1024 ** 3

/** Keys differ by ROCm version (`Card series` in 6.0, `Card Series` in 6.1+), so they are matched lower-cased. */
type Fields = Map<string, string>

function lower(obj: Record<string, unknown>): Fields {
  return new Map(Object.entries(obj).map(([k, v]) => [k.trim().toLowerCase(), String(v).trim()]))
}

function bytes(f: Fields, key: string, card: string, required: true): number
function bytes(f: Fields, key: string, card: string, required?: false): number | null
function bytes(f: Fields, key: string, card: string, required = false): number | null {
  const raw = f.get(key.toLowerCase())
  if (raw === undefined || raw === 'N/A' || raw === '') {
    if (required) throw new Error(`rocm-smi printed no '${key}' for ${card}`)
    return null
  }
  if (!/^\d+$/.test(raw)) throw new Error(`rocm-smi '${key}' of ${card} is '${raw}', not a byte count`)
  return Number(raw)
}

function usable(v: string | undefined): string | undefined {
  // Old ROCm prints the PCI vendor id (`0x1002`) where the product name should be.
  return v && v !== 'N/A' && !/^0x[0-9a-f]+$/i.test(v) ? v : undefined
}

function cardFromFields(card: string, f: Fields): AmdCard {
  const uniqueId = f.get('unique id')
  const bus = f.get('pci bus')
  return {
    card,
    id: uniqueId && uniqueId !== 'N/A' ? uniqueId : bus && bus !== 'N/A' ? bus : card,
    name:
      usable(f.get('card series')) ?? usable(f.get('card sku')) ?? usable(f.get('card model')) ?? 'AMD GPU',
    vramTotal: bytes(f, 'VRAM Total Memory (B)', card, true),
    vramUsed: bytes(f, 'VRAM Total Used Memory (B)', card),
    gttTotal: bytes(f, 'GTT Total Memory (B)', card),
    gttUsed: bytes(f, 'GTT Total Used Memory (B)', card),
  }
}

/** `rocm-smi … --json`: one object per `cardN`; other top-level keys (`system`) are skipped. */
export function parseRocmSmiJson(text: string): AmdCard[] {
  let data: unknown
  try {
    data = JSON.parse(text)
  } catch (err) {
    throw new Error(`rocm-smi printed invalid JSON: ${(err as Error).message}`)
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data))
    throw new Error('rocm-smi JSON is not an object')
  return Object.entries(data as Record<string, unknown>)
    .filter(([k, v]) => /^card\d+$/.test(k) && typeof v === 'object' && v !== null)
    .map(([k, v]) => cardFromFields(k, lower(v as Record<string, unknown>)))
}

/** `rocm-smi … --csv`: a header row starting with `device`, then one row per card. */
export function parseRocmSmiCsv(text: string): AmdCard[] {
  const lines = text.split(/\r?\n/).filter((l) => l.trim() !== '')
  const header = lines[0]?.split(',')
  if (header?.[0]?.trim().toLowerCase() !== 'device') throw new Error('rocm-smi CSV has no device header')
  return lines.slice(1).map((line) => {
    const cells = line.split(',')
    // Card Series may itself contain commas in theory; names never do in practice, but cell counts must match.
    if (cells.length !== header.length)
      throw new Error(`rocm-smi CSV row has ${cells.length} cells, header ${header.length}`)
    const f: Fields = new Map(header.map((h, i) => [h.trim().toLowerCase(), cells[i]!.trim()]))
    return cardFromFields(f.get('device')!, f)
  })
}

/** Plain `rocm-smi --showmeminfo vram`: `GPU[0]   : VRAM Total Memory (B): 4278190080`. */
export function parseRocmSmiText(text: string): AmdCard[] {
  const byGpu = new Map<string, Fields>()
  for (const line of text.split('\n')) {
    const m = /^GPU\[(\d+)\]\s*:\s*(.+?):\s*(\S+)\s*$/.exec(line)
    if (!m) continue
    const key = `card${m[1]}`
    if (!byGpu.has(key)) byGpu.set(key, new Map())
    byGpu.get(key)!.set(m[2]!.trim().toLowerCase(), m[3]!)
  }
  return [...byGpu].map(([card, f]) => cardFromFields(card, f))
}

/** Any of the three forms. */
export function parseRocmSmi(text: string): AmdCard[] {
  const t = text.trimStart()
  if (t.startsWith('{')) return parseRocmSmiJson(t)
  if (/^device,/i.test(t)) return parseRocmSmiCsv(t)
  return parseRocmSmiText(t)
}

/**
 * One amdgpu card from its sysfs files (`read(name)` gives `device/<name>` or undefined when absent).
 * Returns undefined for a card of another vendor (the vendor file is not 0x1002) or without VRAM info.
 */
export function parseSysfsCard(
  card: string,
  read: (file: string) => string | undefined,
): AmdCard | undefined {
  if (read('vendor')?.trim().toLowerCase() !== '0x1002') return undefined
  const num = (file: string): number | null => {
    const raw = read(file)?.trim()
    if (raw === undefined) return null
    if (!/^\d+$/.test(raw)) throw new Error(`${card}/device/${file} is '${raw}', not a byte count`)
    return Number(raw)
  }
  const vramTotal = num('mem_info_vram_total')
  if (vramTotal === null) return undefined
  const slot = /^PCI_SLOT_NAME=(.+)$/m.exec(read('uevent') ?? '')?.[1]
  const unique = read('unique_id')?.trim()
  return {
    card,
    id: slot ?? (unique || card),
    name: read('product_name')?.trim() || `AMD GPU ${read('device')?.trim() ?? card}`,
    vramTotal,
    vramUsed: num('mem_info_vram_used'),
    gttTotal: num('mem_info_gtt_total'),
    gttUsed: num('mem_info_gtt_used'),
  }
}

export interface AmdDevice {
  localId: string
  name: string
  kind: 'dedicated' | 'unified'
  totalBytes: number
  usedBytes: number
}

/** Largest BIOS VRAM carve-out seen on APUs (Strix Halo defaults to 4 GiB); discrete ROCm GPUs have more. */
export const APU_CARVEOUT_MAX = 4 * GIB
/** Below this, a VRAM pool is an iGPU carve-out even when the GTT size is unknown (Raphael: 64 MiB). */
export const IGPU_CARVEOUT_MAX = 1 * GIB

/**
 * A card to a device. An integrated GPU (APU: a small VRAM carve-out, ≤ 4 GiB, with a larger GTT, like
 * Strix Halo) allocates from system RAM through GTT, so it is `unified` and its total is the GTT size, the
 * pool ROCm reports to applications. A carve-out under 1 GiB with no GTT figure (Raphael in rocm-smi CSV)
 * is also `unified`, sized by the carve-out. Everything else is `dedicated` VRAM.
 */
export function toDevice(c: AmdCard): AmdDevice {
  const apu =
    (c.gttTotal !== null && c.vramTotal <= APU_CARVEOUT_MAX && c.gttTotal > c.vramTotal) ||
    (c.gttTotal === null && c.vramTotal < IGPU_CARVEOUT_MAX)
  if (apu && c.gttTotal !== null) {
    if (c.gttUsed === null)
      throw new Error(`${c.card}: no GTT usage (mem_info_gtt_used) for an integrated GPU`)
    return {
      localId: c.id,
      name: `${c.name} (integrated)`,
      kind: 'unified',
      totalBytes: c.gttTotal,
      usedBytes: Math.min(c.gttUsed, c.gttTotal),
    }
  }
  if (c.vramUsed === null)
    throw new Error(`${c.card}: no VRAM usage (VRAM Total Used Memory / mem_info_vram_used)`)
  return {
    localId: c.id,
    name: apu ? `${c.name} (integrated)` : c.name,
    kind: apu ? 'unified' : 'dedicated',
    totalBytes: c.vramTotal,
    usedBytes: Math.min(c.vramUsed, c.vramTotal),
  }
}

/**
 * Pure parsers for nvidia-smi output. No I/O here: every function takes the text a command printed.
 */

/** One CSV row, keyed by the query field name (`memory.total`); unsupported cells are null. */
export type QueryRow = Record<string, string | null>

export interface NvidiaGpu {
  index: number | null
  /** `GPU-…` UUID, null when the query did not ask for it or the driver printed a marker. */
  uuid: string | null
  name: string
  /** MiB, or null where the driver prints `[N/A]` / `[Not Supported]` (GB10, Jetson: unified memory). */
  totalMiB: number | null
  usedMiB: number | null
  freeMiB: number | null
  reservedMiB: number | null
}

/** The fields the provider asks for; `--format=csv,nounits` with the header, so columns map by name. */
export const QUERY_FIELDS = ['index', 'uuid', 'name', 'memory.total', 'memory.used', 'memory.free'] as const

/**
 * Cells nvidia-smi prints instead of a value: `[N/A]` (drivers since 2020), `[Not Supported]` (older),
 * `[Requested functionality has been deprecated]`, `[Unknown Error]`, `[Insufficient Permissions]`, and a
 * bare `N/A`.
 */
export function isMarker(cell: string): boolean {
  return /^\[[^\]]*\]$/.test(cell) || cell === 'N/A'
}

/** `memory.total [MiB]` → `memory.total`: the header keeps unit suffixes even with `nounits`. */
export function headerField(name: string): string {
  return name.replace(/\s*\[[^\]]*\]\s*$/, '').trim()
}

/**
 * Parses `--query-gpu=… --format=csv[,nounits][,noheader]`. With a header the columns are mapped by name;
 * for `noheader` output pass the queried `columns`. A row whose cell count differs from the columns is an
 * error, never a silent shift. Loop mode (`-l`/`-lms`) prints the header once: all rows are returned.
 */
export function parseQueryCsv(text: string, columns?: readonly string[]): QueryRow[] {
  const lines = text.split(/\r?\n/).filter((l) => l.trim() !== '')
  let names = columns ? [...columns] : undefined
  const rows: QueryRow[] = []
  for (const line of lines) {
    const cells = line.split(',').map((c) => c.trim())
    if (!names) {
      names = cells.map(headerField)
      continue
    }
    if (cells.length !== names.length) {
      throw new Error(
        `nvidia-smi printed ${cells.length} columns where ${names.length} were expected: '${line}'`,
      )
    }
    const row: QueryRow = {}
    names.forEach((n, i) => {
      const c = cells[i]!
      row[n] = isMarker(c) ? null : c
    })
    rows.push(row)
  }
  return rows
}

/** `81559 MiB` or `81559` → 81559; a marker → null; anything else is an error (never NaN). */
export function parseMiB(cell: string | null | undefined, field: string): number | null {
  if (cell === null || cell === undefined) return null
  const m = /^(\d+(?:\.\d+)?)(?:\s*MiB)?$/.exec(cell.trim())
  if (!m) throw new Error(`nvidia-smi ${field} is '${cell}', not a number of MiB`)
  return Math.round(Number(m[1]))
}

export function gpusFromRows(rows: QueryRow[]): NvidiaGpu[] {
  return rows.map((r, i) => {
    const index = r.index === undefined || r.index === null ? null : Number(r.index)
    if (index !== null && !Number.isInteger(index))
      throw new Error(`nvidia-smi index '${r.index}' of row ${i}`)
    return {
      index,
      uuid: r.uuid ?? null,
      name: r.name ?? 'NVIDIA GPU',
      totalMiB: parseMiB(r['memory.total'], 'memory.total'),
      usedMiB: parseMiB(r['memory.used'], 'memory.used'),
      freeMiB: parseMiB(r['memory.free'], 'memory.free'),
      reservedMiB: parseMiB(r['memory.reserved'], 'memory.reserved'),
    }
  })
}

/**
 * Parses the plain `nvidia-smi` table (the fallback when a query is refused). Reads each GPU's index, name
 * and `used MiB / total MiB`; `Not Supported` memory (GB10, Jetson) gives nulls. The MIG and process tables
 * that follow are ignored: a MIG-enabled GPU is one device with its whole-GPU memory.
 */
export function parseTable(text: string): NvidiaGpu[] {
  const gpus: NvidiaGpu[] = []
  const lines = text.split(/\r?\n/)
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!
    if (/MIG devices:|Processes:/.test(line)) break
    const head = /^\|\s+(\d+)\s+(.+?)\s+(?:On|Off|N\/A)\s+\|/.exec(line)
    if (!head) continue
    const next = lines[i + 1] ?? ''
    const mem = /(\d+)MiB\s*\/\s*(\d+)MiB/.exec(next)
    if (!mem && !/Not Supported|N\/A/.test(next))
      throw new Error(`no memory usage after GPU ${head[1]} in the table`)
    const used = mem ? Number(mem[1]) : null
    const total = mem ? Number(mem[2]) : null
    gpus.push({
      index: Number(head[1]),
      uuid: null,
      name: head[2]!.trim(),
      totalMiB: total,
      usedMiB: used,
      freeMiB: total !== null && used !== null ? total - used : null,
      reservedMiB: null,
    })
  }
  return gpus
}

const MIB = 1024 * 1024

export interface HostRam {
  totalBytes: number
  freeBytes: number
}

export interface NvidiaDevice {
  localId: string
  name: string
  kind: 'dedicated' | 'unified'
  totalBytes: number
  usedBytes: number
  freeBytes: number
}

/**
 * GPUs to devices. A GPU with numeric memory is `dedicated` (total from `memory.total`, or reserved + used +
 * free when only those were queried). A GPU whose memory is `[N/A]` / `[Not Supported]` shares the host's
 * RAM (GB10 DGX Spark, Jetson): it becomes one `unified` device whose totals are the host's RAM totals
 * (`os.totalmem()` / `os.freemem()`), which is the pool CUDA allocates from there. Ids are the UUID, else
 * the index.
 */
export function toDevices(gpus: NvidiaGpu[], ram: HostRam): NvidiaDevice[] {
  return gpus.map((g, i) => {
    const localId = g.uuid ?? (g.index !== null ? String(g.index) : String(i))
    let total = g.totalMiB
    if (total === null && g.usedMiB !== null && g.freeMiB !== null) {
      total = g.usedMiB + g.freeMiB + (g.reservedMiB ?? 0)
    }
    if (total === null) {
      const free = Math.min(ram.freeBytes, ram.totalBytes)
      return {
        localId,
        name: `${g.name} (unified memory)`,
        kind: 'unified',
        totalBytes: ram.totalBytes,
        usedBytes: ram.totalBytes - free,
        freeBytes: free,
      }
    }
    const used = Math.min(total, g.usedMiB ?? Math.max(0, total - (g.freeMiB ?? total)))
    const free = Math.min(total, g.freeMiB ?? total - used)
    return {
      localId,
      name: g.name,
      kind: 'dedicated',
      totalBytes: total * MIB,
      usedBytes: used * MIB,
      freeBytes: free * MIB,
    }
  })
}

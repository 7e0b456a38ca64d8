import { describe, expect, test } from 'vitest'
import { gpusFromRows, parseQueryCsv, parseTable, QUERY_FIELDS, toDevices } from '../src/parse'
import { fixture } from './helpers'

const MIB = 1024 * 1024
const RAM = { totalBytes: 128 * 1024 ** 3, freeBytes: 100 * 1024 ** 3 }

describe('query CSV with a header (columns mapped by name)', () => {
  test('tesla-p100: no memory.total column, total = reserved + used + free; [N/A] fan is null', () => {
    const rows = parseQueryCsv(fixture('tesla-p100-query-gpu-csv-units-na-netdata.txt'))
    expect(rows).toHaveLength(1)
    expect(rows[0]!['fan.speed']).toBeNull()
    const [gpu] = gpusFromRows(rows)
    expect(gpu).toMatchObject({
      uuid: 'GPU-ef1b2c9b-38d8-2090-2bd1-f567a3eb42a6',
      name: 'Tesla P100-PCIE-16GB',
    })
    expect(toDevices([gpu!], RAM)).toEqual([
      {
        localId: 'GPU-ef1b2c9b-38d8-2090-2bd1-f567a3eb42a6',
        name: 'Tesla P100-PCIE-16GB',
        kind: 'dedicated',
        totalBytes: (103 + 0 + 16280) * MIB,
        usedBytes: 0,
        freeBytes: 16280 * MIB,
      },
    ])
  })

  test('h100 MIG, all 212 fields with units: whole-GPU memory matches the -q "FB Memory Usage" block', () => {
    const [gpu] = gpusFromRows(parseQueryCsv(fixture('h100-mig-linux-590-query-gpu-allfields.csv')))
    expect(gpu).toMatchObject({
      index: 0,
      name: 'NVIDIA H100 80GB HBM3',
      totalMiB: 81559,
      usedMiB: 59,
      freeMiB: 81022,
    })
    const q = fixture('h100-mig-linux-590-query-q.txt')
    const block =
      /\n {4}FB Memory Usage\n\s+Total\s+: (\d+) MiB\n\s+Reserved\s+: \d+ MiB\n\s+Used\s+: (\d+) MiB/.exec(q)
    expect([Number(block![1]), Number(block![2])]).toEqual([gpu!.totalMiB, gpu!.usedMiB])
    const [dev] = toDevices([gpu!], RAM)
    expect(dev).toMatchObject({ kind: 'dedicated', localId: 'GPU-00000000-0000-0000-0000-000000000000' })
  })

  test('gb10 header + units, memory [N/A]: one unified device with the host RAM totals', () => {
    const gpus = gpusFromRows(parseQueryCsv(fixture('gb10-dgx-spark-header-units.txt')))
    expect(gpus).toEqual([
      {
        index: 0,
        uuid: null,
        name: 'NVIDIA GB10',
        totalMiB: null,
        usedMiB: null,
        freeMiB: null,
        reservedMiB: null,
      },
    ])
    expect(toDevices(gpus, RAM)).toEqual([
      {
        localId: '0',
        name: 'NVIDIA GB10 (unified memory)',
        kind: 'unified',
        totalBytes: RAM.totalBytes,
        usedBytes: RAM.totalBytes - RAM.freeBytes,
        freeBytes: RAM.freeBytes,
      },
    ])
  })

  test('gb10 memory-only header, all [N/A]: unified, id falls back to the row number', () => {
    const devices = toDevices(
      gpusFromRows(parseQueryCsv(fixture('gb10-dgx-spark-memory-only-header.txt'))),
      RAM,
    )
    expect(devices).toMatchObject([{ localId: '0', kind: 'unified', totalBytes: RAM.totalBytes }])
  })

  test('gb10 loop mode (-l 1): header printed once, every row parsed, memory.used [N/A]', () => {
    const rows = parseQueryCsv(fixture('gb10-dgx-spark-loop-timestamp.txt'))
    expect(rows).toHaveLength(5)
    expect(rows.map((r) => r['memory.used'])).toEqual([null, null, null, null, null])
    expect(rows[4]!.timestamp).toBe('2025/11/24 14:08:59.758')
  })

  test('gtx650: [Not Supported] under a header with a unit is null', () => {
    expect(parseQueryCsv(fixture('utilization-query-header-not-supported-gtx650.txt'))).toEqual([
      { 'utilization.memory': null },
    ])
  })
})

describe('query CSV without a header (columns given)', () => {
  test('gb10 noheader,nounits: [N/A] stays bracketed and becomes a unified device', () => {
    const rows = parseQueryCsv(fixture('gb10-dgx-spark-noheader-nounits.txt'), [
      'index',
      'name',
      'memory.total',
      'memory.used',
      'memory.free',
    ])
    expect(toDevices(gpusFromRows(rows), RAM)).toMatchObject([
      { localId: '0', name: 'NVIDIA GB10 (unified memory)', kind: 'unified' },
    ])
  })

  test('gb10 memory.used,memory.total,utilization.memory: numeric 0 beside [N/A] memory', () => {
    const rows = parseQueryCsv(fixture('gb10-dgx-spark-used-total-utilmem-noheader.txt'), [
      'memory.used',
      'memory.total',
      'utilization.memory',
    ])
    expect(rows).toEqual([{ 'memory.used': null, 'memory.total': null, 'utilization.memory': '0' }])
    expect(toDevices(gpusFromRows(rows), RAM)[0]!.kind).toBe('unified')
  })

  test('jetson orin: every numeric field [N/A], whatever the 5 unknown columns are: unified', () => {
    // The source does not state the query; every numeric cell is [N/A], so any assignment of the five
    // numeric columns gives the same result.
    const rows = parseQueryCsv(fixture('jetson-orin-nvgpu-noheader.txt'), [
      'index',
      'name',
      'memory.total',
      'memory.used',
      'memory.free',
      'utilization.gpu',
      'temperature.gpu',
    ])
    expect(toDevices(gpusFromRows(rows), RAM)).toMatchObject([
      { name: 'Orin (nvgpu) (unified memory)', kind: 'unified' },
    ])
  })

  test('a row with more cells than the query had columns is an error, not a shifted parse', () => {
    expect(() => parseQueryCsv(fixture('jetson-orin-nvgpu-noheader.txt'), [...QUERY_FIELDS])).toThrow(
      /7 columns/,
    )
  })

  for (const [file, marker] of [
    ['memory-query-noheader-nounits-na-2020.txt', '[N/A]'],
    ['memory-query-noheader-nounits-not-supported-pre2020.txt', '[Not Supported]'],
  ] as const) {
    test(`2 GB laptop GPU, fan speed ${marker}: total 2004, free 2004, used 0`, () => {
      const rows = parseQueryCsv(fixture(file), [
        'memory.total',
        'memory.free',
        'memory.used',
        'temperature.gpu',
        'fan.speed',
        'utilization.gpu',
        'utilization.memory',
      ])
      expect(rows[0]!['fan.speed']).toBeNull()
      expect(toDevices(gpusFromRows(rows), RAM)).toEqual([
        {
          localId: '0',
          name: 'NVIDIA GPU',
          kind: 'dedicated',
          totalBytes: 2004 * MIB,
          usedBytes: 0,
          freeBytes: 2004 * MIB,
        },
      ])
    })
  }

  test('a memory cell that is not a number is an error, never NaN', () => {
    const rows = parseQueryCsv('0, X, lots MiB, 1, 2', [
      'index',
      'name',
      'memory.total',
      'memory.used',
      'memory.free',
    ])
    expect(() => gpusFromRows(rows)).toThrow(/memory.total is 'lots MiB'/)
  })
})

describe('plain nvidia-smi table (fallback)', () => {
  test('2x RTX 5090 (610 driver header): two GPUs with used / total', () => {
    expect(parseTable(fixture('2x-rtx5090-610-table-truncated.txt'))).toMatchObject([
      { index: 0, name: 'NVIDIA GeForce RTX 5090', usedMiB: 29324, totalMiB: 32607, freeMiB: 32607 - 29324 },
      { index: 1, name: 'NVIDIA GeForce RTX 5090', usedMiB: 30357, totalMiB: 32607 },
    ])
  })

  test('rtx 4080 super (Linux 595) and rtx 2080 super (Windows 610)', () => {
    expect(parseTable(fixture('rtx4080super-linux-595-table.txt'))).toMatchObject([
      { index: 0, name: 'NVIDIA GeForce RTX 4080 ...', usedMiB: 596, totalMiB: 16376 },
    ])
    const win = parseTable(fixture('rtx2080super-windows-610-table.txt'))
    expect(win).toHaveLength(1)
    expect(win[0]!.totalMiB).toBeGreaterThan(8000)
  })

  test('h100 with MIG: one device with whole-GPU memory; the MIG table is not read', () => {
    expect(parseTable(fixture('h100-mig-linux-590-table.txt'))).toMatchObject([
      { index: 0, name: 'NVIDIA H100 80GB HBM3', usedMiB: 59, totalMiB: 81559 },
    ])
  })

  test('gb10 and jetson tables, memory "Not Supported": unified devices', () => {
    for (const f of ['gb10-dgx-spark-table.txt', 'jetson-orin-nvgpu-table.txt']) {
      const gpus = parseTable(fixture(f))
      expect(gpus).toHaveLength(1)
      expect(gpus[0]!.totalMiB).toBeNull()
      expect(toDevices(gpus, RAM)[0]!.kind).toBe('unified')
    }
  })

  test('-q and -q -x reports are not what the provider reads: no GPU is found in them (so the snapshot fails)', () => {
    expect(parseTable(fixture('h100-mig-linux-590-query-q.txt'))).toEqual([])
    expect(parseTable(fixture('a100-sxm4-mig-535-q-x.xml'))).toEqual([])
  })
})

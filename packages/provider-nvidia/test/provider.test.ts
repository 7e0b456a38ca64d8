import { createFakeHost } from '@sharedllm/core/testing'
import { describe, expect, test } from 'vitest'
import { createNvidiaProvider } from '../src/index'
import { fixture } from './helpers'

test('asks for index,uuid,name,memory.* as CSV with a header and no units', async () => {
  const host = createFakeHost({
    commands: { 'nvidia-smi': fixture('tesla-p100-query-gpu-csv-units-na-netdata.txt') },
  })
  await createNvidiaProvider({ loopMs: 0 }).snapshot(host)
  expect(host.calls).toEqual([
    {
      cmd: 'nvidia-smi',
      args: ['--query-gpu=index,uuid,name,memory.total,memory.used,memory.free', '--format=csv,nounits'],
    },
  ])
})

test('a GB10 reports one unified device sized by the host RAM', async () => {
  const host = createFakeHost({
    commands: { 'nvidia-smi': fixture('gb10-dgx-spark-header-units.txt') },
    totalMemBytes: 130_000_000_000,
    freeMemBytes: 120_000_000_000,
  })
  const p = createNvidiaProvider()
  expect(await p.isAvailable(host)).toBe(true)
  expect(await p.snapshot(host)).toEqual([
    {
      id: 'nvidia:0',
      name: 'NVIDIA GB10 (unified memory)',
      kind: 'unified',
      totalBytes: 130_000_000_000,
      usedBytes: 10_000_000_000,
      freeBytes: 120_000_000_000,
    },
  ])
})

test('when the query is refused, every GPU of the plain table is a device', async () => {
  const host = createFakeHost({
    commands: {
      'nvidia-smi': (args) =>
        args.length === 0 ? fixture('2x-rtx5090-610-table-truncated.txt') : { exitCode: 2 },
    },
  })
  const devices = await createNvidiaProvider().snapshot(host)
  expect(devices.map((d) => [d.id, d.usedBytes / 2 ** 20, d.totalBytes / 2 ** 20])).toEqual([
    ['nvidia:0', 29324, 32607],
    ['nvidia:1', 30357, 32607],
  ])
})

test('no nvidia-smi on PATH: not available, and a snapshot is a PROVIDER_FAILED error', async () => {
  const p = createNvidiaProvider()
  const host = createFakeHost()
  expect(await p.isAvailable(host)).toBe(false)
  await expect(p.snapshot(host)).rejects.toMatchObject({ code: 'PROVIDER_FAILED' })
})

describe('loop mode (nvidia-smi -lms)', () => {
  const p100 = fixture('tesla-p100-query-gpu-csv-units-na-netdata.txt')
  const [header, row] = p100.split('\n') as [string, string]

  function loopHost() {
    const io: { write?: (c: string) => void; exit?: (c: number | null) => void; stopped: number } = {
      stopped: 0,
    }
    const host = createFakeHost({
      commands: { 'nvidia-smi': p100 },
      streams: {
        'nvidia-smi': (_args, handle) => {
          io.write = handle.write
          io.exit = handle.exit
          return () => {
            io.stopped++
          }
        },
      },
    })
    return { host, io }
  }

  test('after one query, samples come from one long-running nvidia-smi', async () => {
    const { host, io } = loopHost()
    const p = createNvidiaProvider({ loopMs: 3000 })
    await p.snapshot(host)
    expect(host.calls.map((c) => c.args.at(-1))).toEqual(['--format=csv,nounits', '3000'])
    expect(host.calls[1]!.args).toEqual([...host.calls[0]!.args, '-lms', '3000'])
    // The header arrives once; a row split across chunks is reassembled.
    io.write!(`${header}\n${row.slice(0, 20)}`)
    io.write!(`${row.slice(20).replace(', 0, 16280,', ', 2048, 14232,')}\n`)
    const [dev] = await p.snapshot(host)
    expect(dev).toMatchObject({ usedBytes: 2048 * 2 ** 20, freeBytes: 14232 * 2 ** 20 })
    expect(host.calls).toHaveLength(2)
    await p.close?.()
    expect(io.stopped).toBe(1)
  })

  test('when the loop exits, samples fall back to one-shot queries and the loop restarts after the back-off', async () => {
    const { host, io } = loopHost()
    const p = createNvidiaProvider({ loopMs: 3000, loopRestartMs: 0 })
    await p.snapshot(host)
    io.exit!(1)
    await new Promise((r) => setTimeout(r, 0))
    await p.snapshot(host)
    expect(host.calls.map((c) => c.args.includes('-lms'))).toEqual([false, true, false, true])
    await p.close?.()
  })

  test('garbage from the loop ends it instead of reporting nonsense', async () => {
    const { host, io } = loopHost()
    const p = createNvidiaProvider({ loopMs: 3000, loopRestartMs: 60_000 })
    await p.snapshot(host)
    io.write!(`${header}\nnot, a, row\n`)
    expect(io.stopped).toBe(1)
    const [dev] = await p.snapshot(host)
    expect(dev!.usedBytes).toBe(0)
    expect(host.calls.filter((c) => c.args.includes('-lms'))).toHaveLength(1)
  })
})

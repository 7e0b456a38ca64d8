// A real H200 (driver 580.159.04), captured live with the provider's own command lines
// (fixtures/h200-580-live.source.md): one-shot query, loop mode, and nvidia-smi -q to cross-check.
import { createFakeHost } from '@sharedllm/core/testing'
import { expect, test } from 'vitest'
import { createNvidiaProvider, parseQueryCsv } from '../src/index'
import { fixture } from './helpers'

const MiB = 1024 * 1024

test('the live H200 query gives one dedicated device by UUID with nvidia-smi -q totals', async () => {
  const host = createFakeHost({ commands: { 'nvidia-smi': fixture('h200-580-live-provider-query.txt') } })
  const p = createNvidiaProvider({ loopMs: 0 })
  expect(await p.isAvailable(host)).toBe(true)
  const devices = await p.snapshot(host)
  const q = fixture('h200-580-live-q-memory.txt')
  const fb = (field: string) =>
    Number(new RegExp(`FB Memory Usage[\\s\\S]*?${field}\\s+:\\s+(\\d+) MiB`).exec(q)?.[1])
  expect(devices).toEqual([
    {
      id: 'nvidia:GPU-021fba82-fad1-f6fa-9b6a-551029979779',
      name: 'NVIDIA H200',
      kind: 'dedicated',
      totalBytes: fb('Total') * MiB,
      usedBytes: fb('Used') * MiB,
      freeBytes: fb('Free') * MiB,
    },
  ])
  // The driver's reservation is in neither used nor free: free is what a model can still take.
  expect(devices[0]!.totalBytes - devices[0]!.usedBytes - devices[0]!.freeBytes).toBe(615 * MiB)
})

test('the live loop-mode output parses row for row like the one-shot query', () => {
  const once = parseQueryCsv(fixture('h200-580-live-provider-query.txt'))
  const loop = fixture('h200-580-live-provider-loop.txt').trim().split('\n')
  expect(loop[0]).toBe(fixture('h200-580-live-provider-query.txt').split('\n')[0])
  for (const row of loop.slice(1)) {
    expect(parseQueryCsv(`${loop[0]}\n${row}\n`)).toEqual(once)
  }
})

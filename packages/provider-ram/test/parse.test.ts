import { createFakeHost } from '@sharedllm/core/testing'
import { expect, test } from 'vitest'
import { createRamProvider } from '../src/index'
import { parseMeminfo, parseMeminfoFields } from '../src/parse'
import { fixture } from './helpers'

const KIB = 1024
const meminfo = fixture('linux-x86_64-16gb-telegraf.txt')

test('16 GB Linux: total from MemTotal, free from MemAvailable', () => {
  expect(parseMeminfo(meminfo)).toEqual({
    totalBytes: 16201888 * KIB,
    availableBytes: 14221924 * KIB,
    source: 'MemAvailable',
  })
})

test('HugePages_* are counts, not kB', () => {
  const f = parseMeminfoFields(meminfo)
  expect(f.get('HugePages_Total')).toBe(0)
  expect(f.get('Hugepagesize')).toBe(2048 * KIB)
})

test('kernels before 3.14 have no MemAvailable: MemFree + Buffers + Cached', () => {
  // The same real file with the MemAvailable line removed, as such a kernel prints it.
  const old = meminfo.replace(/^MemAvailable:.*\n/m, '')
  expect(parseMeminfo(old)).toEqual({
    totalBytes: 16201888 * KIB,
    availableBytes: (1834660 + 2328512 + 10074816) * KIB,
    source: 'MemFree+Buffers+Cached',
  })
})

test('no MemTotal is an error, not zero memory', () => {
  expect(() => parseMeminfo(meminfo.replace(/^MemTotal:.*\n/m, ''))).toThrow(/MemTotal/)
})

test('the provider reports one system device from /proc/meminfo on Linux', async () => {
  const host = createFakeHost({ files: { '/proc/meminfo': meminfo } })
  expect(await createRamProvider().snapshot(host)).toEqual([
    {
      id: 'ram:system',
      name: 'System RAM',
      kind: 'system',
      totalBytes: 16201888 * KIB,
      usedBytes: (16201888 - 14221924) * KIB,
      freeBytes: 14221924 * KIB,
    },
  ])
})

test('elsewhere it uses the OS totals', async () => {
  const host = createFakeHost({
    platform: 'darwin',
    arch: 'x64',
    totalMemBytes: 8 * 2 ** 30,
    freeMemBytes: 2 ** 30,
  })
  expect(await createRamProvider().snapshot(host)).toMatchObject([
    { totalBytes: 8 * 2 ** 30, freeBytes: 2 ** 30, usedBytes: 7 * 2 ** 30 },
  ])
})

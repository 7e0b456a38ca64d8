import { createFakeHost } from '@sharedllm/core/testing'
import { expect, test } from 'vitest'
import { createIntelProvider } from '../src/index'
import { parseUevent } from '../src/parse'
import { fixture } from './helpers'
import { alderLakeIgpu, arcA770OnDkmsI915, arcB580OnXe } from './trees'

const RAM = { totalMemBytes: 32 * 2 ** 30, freeMemBytes: 20 * 2 ** 30 }

test('an iGPU without local memory is one shared-memory device sized by the host RAM', async () => {
  const host = createFakeHost({ files: alderLakeIgpu, ...RAM })
  expect(await createIntelProvider().snapshot(host)).toEqual([
    {
      id: 'intel:0000:00:02.0',
      name: 'Intel GPU 8086:46A6 (i915), shared memory',
      kind: 'unified',
      totalBytes: 32 * 2 ** 30,
      usedBytes: 12 * 2 ** 30,
      freeBytes: 20 * 2 ** 30,
    },
  ])
})

test('Arc on xe: total from tile0/physical_vram_size_bytes; xe publishes no usage, so used is 0', async () => {
  const host = createFakeHost({ files: arcB580OnXe, ...RAM })
  expect(await createIntelProvider().snapshot(host)).toEqual([
    {
      id: 'intel:0000:03:00.0',
      name: 'Intel GPU 8086:E20B (xe)',
      kind: 'dedicated',
      totalBytes: 12884901888,
      usedBytes: 0,
      freeBytes: 12884901888,
    },
  ])
})

test('Arc on the DKMS i915: lmem_total_bytes and lmem_avail_bytes on the card directory', async () => {
  const host = createFakeHost({ files: arcA770OnDkmsI915, ...RAM })
  expect(await createIntelProvider().snapshot(host)).toMatchObject([
    { kind: 'dedicated', totalBytes: 17179869184, usedBytes: 17179869184 - 15032385536 },
  ])
})

test('an iGPU and a discrete card on one host are two devices', async () => {
  const host = createFakeHost({ files: { ...alderLakeIgpu, ...arcB580OnXe }, ...RAM })
  expect((await createIntelProvider().snapshot(host)).map((d) => [d.id, d.kind])).toEqual([
    ['intel:0000:00:02.0', 'unified'],
    ['intel:0000:03:00.0', 'dedicated'],
  ])
})

test('a garbled byte count is an error, never NaN', async () => {
  const host = createFakeHost({
    files: { ...arcB580OnXe, '/sys/class/drm/card1/device/tile0/physical_vram_size_bytes': '12 GiB\n' },
  })
  await expect(createIntelProvider().snapshot(host)).rejects.toMatchObject({ code: 'PROVIDER_FAILED' })
})

test('uevent lines', () => {
  expect(parseUevent('DRIVER=xe\nPCI_ID=8086:E20B\n').get('PCI_ID')).toBe('8086:E20B')
})

test('intel_gpu_top -J reports engines, frequency and power but no memory, so it is not read', () => {
  const sample = JSON.parse(fixture('igt-json-single-sample-netdata.txt'))
  expect(Object.keys(sample).sort()).toEqual([
    'clients',
    'engines',
    'frequency',
    'interrupts',
    'period',
    'power',
    'rc6',
  ])
  expect(JSON.stringify(sample)).not.toMatch(/mem|vram|lmem/i)
})

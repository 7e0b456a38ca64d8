import { createFakeHost } from '@sharedllm/core/testing'
import { expect, test } from 'vitest'
import { createAppleProvider } from '../src/index'
import { memsizeBytes, parseSysctl, parseVmStat, usedBytes } from '../src/parse'
import { fixture } from './helpers'

test.each([
  ['sysctl-hw-machdep-m1pro-16gb-monterey.txt', 17179869184, 'Apple M1 Pro'],
  ['sysctl-hw-machdep-m2-16gb-monterey.txt', 17179869184, 'Apple M2'],
  // hw.memsize, not the smaller hw.memsize_usable that Sequoia also prints.
  ['sysctl-hw-machdep-m4max-64gb-sequoia.txt', 68719476736, 'Apple M4 Max'],
])('%s: hw.memsize %d, chip %s', (file, bytes, chip) => {
  const s = parseSysctl(fixture(file))
  expect(memsizeBytes(s)).toBe(bytes)
  expect(s.get('machdep.cpu.brand_string')).toBe(chip)
})

test('big sur subset without hw.memsize: an error, and the brand string is the generic "Apple processor"', () => {
  const s = parseSysctl(fixture('sysctl-hw-machdep-m1-bigsur-subset.txt'))
  expect(s.get('machdep.cpu.brand_string')).toBe('Apple processor')
  expect(() => memsizeBytes(s)).toThrow(/no hw.memsize/)
})

test('`sysctl -n` prints a bare value with no key, which is why the provider asks for keyed output', () => {
  expect(parseSysctl(fixture('sysctl-n-brand-string-apple-m1.txt')).size).toBe(0)
})

test('vm_stat on Apple Silicon: 16 KiB pages from the header; used = app + wired + compressed', () => {
  const vm = parseVmStat(fixture('vm_stat-m1-16k-pages.txt'))
  expect(vm.pageSize).toBe(16384)
  expect(vm.pages.get('Translation faults')).toBe(587255247)
  expect(usedBytes(vm, 16 * 2 ** 30)).toBe((297498 - 3946 + 143109 + 55586) * 16384)
})

test('vm_stat on an Intel Mac: the 4 KiB page size is read, not assumed', () => {
  const vm = parseVmStat(fixture('vm_stat-intel-4k-pages.txt'))
  expect(vm.pageSize).toBe(4096)
  expect(usedBytes(vm, 64 * 2 ** 30)).toBe((464333 - 11820 + 715958 + 0) * 4096)
})

test('used never exceeds hw.memsize', () => {
  const vm = parseVmStat(fixture('vm_stat-m1-16k-pages.txt'))
  expect(usedBytes(vm, 1024)).toBe(1024)
})

test('vm_stat without its header is an error', () => {
  expect(() => parseVmStat(fixture('vm_stat-m1-16k-pages.txt').split('\n').slice(1).join('\n'))).toThrow(
    /page size/,
  )
})

test('the provider reports one unified device named after the chip', async () => {
  const host = createFakeHost({
    platform: 'darwin',
    arch: 'arm64',
    commands: {
      sysctl: fixture('sysctl-hw-machdep-m4max-64gb-sequoia.txt'),
      vm_stat: fixture('vm_stat-m1-16k-pages.txt'),
    },
  })
  const used = (297498 - 3946 + 143109 + 55586) * 16384
  expect(await createAppleProvider().snapshot(host)).toEqual([
    {
      id: 'apple:unified',
      name: 'Apple M4 Max unified memory',
      kind: 'unified',
      totalBytes: 68719476736,
      usedBytes: used,
      freeBytes: 68719476736 - used,
    },
  ])
  expect(host.calls.map((c) => [c.cmd, ...c.args])).toEqual([
    ['sysctl', 'hw.memsize', 'machdep.cpu.brand_string'],
    ['vm_stat'],
  ])
})

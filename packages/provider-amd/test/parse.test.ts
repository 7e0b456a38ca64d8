import { createFakeHost } from '@sharedllm/core/testing'
import { describe, expect, test } from 'vitest'
import { createAmdProvider } from '../src/index'
import { parseRocmSmi, parseSysfsCard, toDevice } from '../src/parse'
import { fixture, sysfs } from './helpers'

const MIB = 2 ** 20

describe('rocm-smi', () => {
  test('4x MI100 (ROCm 6.0.2, "Card series"): four dedicated devices by unique id; "system" skipped', () => {
    const cards = parseRocmSmi(fixture('mi100x4-rocm602-all.json'))
    expect(cards.map((c) => c.card)).toEqual(['card0', 'card1', 'card2', 'card3'])
    expect(cards[0]).toMatchObject({
      id: '0x79ccd55167a2124a',
      name: 'Arcturus GL-XL [Instinct MI100]',
      vramTotal: 34342961152,
      vramUsed: 6750208,
      gttTotal: 135138402304,
    })
    // Large GTT next to 32 GiB of VRAM is still a discrete card.
    expect(cards.map(toDevice).every((d) => d.kind === 'dedicated' && d.totalBytes === 34342961152)).toBe(
      true,
    )
  })

  test('MI50 (2021 ROCm)', () => {
    expect(parseRocmSmi(fixture('mi50-vega20-rocm-2021-all.json')).map(toDevice)).toEqual([
      {
        localId: '0x2f048617326b1ea',
        name: 'Radeon Instinct MI50 32GB',
        kind: 'dedicated',
        totalBytes: 34342961152,
        usedBytes: 10850304,
      },
    ])
  })

  test('RX 6700 XT (ROCm 4.3): no unique id, product name printed as 0x1002: id from the PCI bus', () => {
    expect(parseRocmSmi(fixture('rx6700xt-rocm430-all.json')).map(toDevice)).toEqual([
      {
        localId: '0000:07:00.0',
        name: '67XA6S',
        kind: 'dedicated',
        totalBytes: 12868124672,
        usedBytes: 1622728704,
      },
    ])
  })

  test('RX 7900 XT, JSON and CSV forms of one query agree', () => {
    const json = parseRocmSmi(fixture('rx7900xt-productname-use-vram-json.txt'))
    const csv = parseRocmSmi(fixture('rx7900xt-productname-use-vram-csv.txt'))
    expect(json.map(toDevice)).toEqual([
      {
        localId: 'card0',
        name: 'Radeon RX 7900 XT',
        kind: 'dedicated',
        totalBytes: 21458059264,
        usedBytes: 27856896,
      },
    ])
    expect(csv.map(toDevice)).toEqual(json.map(toDevice))
  })

  test('RX 6800 + Raphael iGPU (CSV): two devices, the 64 MiB carve-out marked integrated', () => {
    const devices = parseRocmSmi(fixture('rx6800-plus-raphael-igpu-productname-vram-uniqueid-csv.txt')).map(
      toDevice,
    )
    expect(devices).toEqual([
      {
        localId: '0x9246____________',
        name: 'Navi 21 [Radeon RX 6800/6800 XT / 6900 XT]',
        kind: 'dedicated',
        totalBytes: 17163091968,
        usedBytes: 692142080,
      },
      {
        localId: 'card1',
        name: 'Raphael (integrated)',
        kind: 'unified',
        totalBytes: 64 * MIB,
        usedBytes: 26079232,
      },
    ])
  })

  test('plain text --showmeminfo vram', () => {
    expect(parseRocmSmi(fixture('rocm-smi-showmeminfo-vram-plain-text.txt'))).toMatchObject([
      { card: 'card0', vramTotal: 4278190080, vramUsed: 108814336, gttTotal: null },
    ])
  })

  test('a non-numeric byte count is an error, never NaN', () => {
    const broken = fixture('rx7900xt-productname-use-vram-json.txt').replace('"21458059264"', '"21.4 GB"')
    expect(() => parseRocmSmi(broken)).toThrow(/not a byte count/)
  })
})

describe('sysfs', () => {
  const card = (files: Record<string, string>, name = 'card0') =>
    parseSysfsCard(name, (f) => files[`/sys/class/drm/${name}/device/${f}`])

  test('Vega 10 (vendor 0x1002, empty product_name): dedicated 8 GiB', () => {
    const c = card(sysfs('amd-vega10-card0-procfs-fixture.json'))!
    expect(toDevice(c)).toEqual({
      localId: '0123456789abcdef',
      name: 'AMD GPU 0x687f',
      kind: 'dedicated',
      totalBytes: 8573157376,
      usedBytes: 1490378752,
    })
  })

  test('8 GB card under load (no vendor file in the capture): skipped unless vendor says 0x1002', () => {
    const files = sysfs('amd-8gb-nixos-card0-vram-used-total.json')
    expect(card(files)).toBeUndefined()
    const c = card({ ...files, '/sys/class/drm/card0/device/vendor': '0x1002\n' })!
    expect(toDevice(c)).toMatchObject({ kind: 'dedicated', totalBytes: 8573157376, usedBytes: 6812925952 })
  })

  test('Strix Halo: 4 GiB carve-out with 96 GiB GTT is integrated and sized by GTT', () => {
    const files = {
      ...sysfs('amd-strix-halo-card1-gtt-vram-uma.json'),
      '/sys/class/drm/card1/device/vendor': '0x1002\n',
    }
    const c = card(files, 'card1')!
    expect(c).toMatchObject({ vramTotal: 4294967296, gttTotal: 103079215104 })
    // The capture has totals only; without mem_info_gtt_used there is no usage to report.
    expect(() => toDevice(c)).toThrow(/mem_info_gtt_used/)
    expect(toDevice({ ...c, gttUsed: 0, vramUsed: 0 })).toMatchObject({
      kind: 'unified',
      totalBytes: 103079215104,
    })
  })

  test('the provider falls back to sysfs when rocm-smi is not installed', async () => {
    const host = createFakeHost({ files: sysfs('amd-vega10-card0-procfs-fixture.json') })
    const p = createAmdProvider()
    expect(await p.isAvailable(host)).toBe(true)
    expect(await p.snapshot(host)).toMatchObject([{ id: 'amd:0123456789abcdef', totalBytes: 8573157376 }])
    expect(host.calls.map((c) => c.cmd)).toEqual(['rocm-smi', 'rocm-smi'])
  })
})

import { defineProvider, type MemoryProvider, type ProviderHost } from '@sharedllm/core'
import { type IntelCard, parseIntelCard, toDevice } from './parse'

export * from './parse'

const DRM = '/sys/class/drm'

const read = (host: ProviderHost, path: string) => host.readFile(path).catch(() => undefined)

async function readCards(host: ProviderHost, signal?: AbortSignal): Promise<IntelCard[]> {
  if (host.platform !== 'linux') return []
  const names = (await host.readdir(DRM).catch(() => [] as string[]))
    .filter((n) => /^card\d+$/.test(n))
    .sort()
  const cards: IntelCard[] = []
  for (const card of names) {
    signal?.throwIfAborted()
    const dev = `${DRM}/${card}/device`
    const vendor = await read(host, `${dev}/vendor`)
    if (vendor?.trim().toLowerCase() !== '0x8086') continue
    const tiles = (await host.readdir(dev).catch(() => [] as string[]))
      .filter((n) => /^tile\d+$/.test(n))
      .sort()
    const tileVram = await Promise.all(
      tiles.map(
        async (t) =>
          (await read(host, `${dev}/${t}/physical_vram_size_bytes`)) ??
          read(host, `${dev}/${t}/memory/physical_vram_size_bytes`),
      ),
    )
    const parsed = parseIntelCard(card, {
      vendor,
      uevent: await read(host, `${dev}/uevent`),
      tileVram,
      lmemTotal: await read(host, `${DRM}/${card}/lmem_total_bytes`),
      lmemAvail: await read(host, `${DRM}/${card}/lmem_avail_bytes`),
    })
    if (parsed) cards.push(parsed)
  }
  return cards
}

/** Intel GPUs on the i915 or xe driver, found under /sys/class/drm (vendor 0x8086). Linux only. */
export function createIntelProvider(): MemoryProvider {
  return defineProvider({
    name: 'intel',
    priority: 10,
    async isAvailable(host) {
      return (await readCards(host)).length > 0
    },
    async snapshot(host, signal) {
      const cards = await readCards(host, signal)
      if (cards.length === 0) throw new Error('no Intel GPU on the i915 or xe driver under /sys/class/drm')
      const ram = { totalBytes: host.totalMemBytes(), freeBytes: host.freeMemBytes() }
      return cards.map((c) => toDevice(c, ram))
    },
  })
}

export const provider: MemoryProvider = createIntelProvider()
export default provider

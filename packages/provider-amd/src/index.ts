import { defineProvider, isCommandMissing, type MemoryProvider, type ProviderHost } from '@sharedllm/core'
import { type AmdCard, parseRocmSmiJson, parseSysfsCard, toDevice } from './parse'

export * from './parse'

const DRM = '/sys/class/drm'
const ROCM_ARGS = [
  '--showproductname',
  '--showmeminfo',
  'vram',
  'gtt',
  '--showuniqueid',
  '--showbus',
  '--json',
]

async function fromRocmSmi(host: ProviderHost, signal?: AbortSignal): Promise<AmdCard[]> {
  const res = await host.exec('rocm-smi', ROCM_ARGS, { timeoutMs: 10_000, signal })
  if (res.exitCode !== 0)
    throw new Error(`rocm-smi exited ${res.exitCode}: ${res.stderr.trim().split('\n')[0] ?? ''}`)
  return parseRocmSmiJson(res.stdout)
}

async function fromSysfs(host: ProviderHost, signal?: AbortSignal): Promise<AmdCard[]> {
  const names = (await host.readdir(DRM)).filter((n) => /^card\d+$/.test(n)).sort()
  const cards: AmdCard[] = []
  for (const card of names) {
    signal?.throwIfAborted()
    const files = new Map<string, string | undefined>()
    for (const f of [
      'vendor',
      'device',
      'uevent',
      'product_name',
      'unique_id',
      'mem_info_vram_total',
      'mem_info_vram_used',
      'mem_info_gtt_total',
      'mem_info_gtt_used',
    ]) {
      files.set(f, await host.readFile(`${DRM}/${card}/device/${f}`).catch(() => undefined))
    }
    const parsed = parseSysfsCard(card, (f) => files.get(f))
    if (parsed) cards.push(parsed)
  }
  return cards
}

/**
 * rocm-smi's JSON first; when rocm-smi is not installed or fails, the amdgpu sysfs files of every card whose
 * PCI vendor is 0x1002. A discrete and an integrated GPU on one host are two devices.
 */
async function readCards(host: ProviderHost, signal?: AbortSignal): Promise<AmdCard[]> {
  let rocmError: unknown
  try {
    const cards = await fromRocmSmi(host, signal)
    if (cards.length > 0) return cards
  } catch (err) {
    signal?.throwIfAborted()
    rocmError = err
  }
  const cards = await fromSysfs(host, signal).catch((err) => {
    if (isCommandMissing(err)) return []
    throw err
  })
  if (cards.length > 0) return cards
  if (rocmError && !isCommandMissing(rocmError)) throw rocmError
  throw new Error('no AMD GPU found by rocm-smi or under /sys/class/drm')
}

export function createAmdProvider(): MemoryProvider {
  return defineProvider({
    name: 'amd',
    priority: 30,
    async isAvailable(host) {
      if (host.platform !== 'linux') return false
      return (await readCards(host)).length > 0
    },
    async snapshot(host, signal) {
      return (await readCards(host, signal)).map(toDevice)
    },
  })
}

export const provider: MemoryProvider = createAmdProvider()
export default provider

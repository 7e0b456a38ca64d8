import { defineProvider, type MemoryProvider, type ProviderHost } from '@sharedllm/core'
import { memsizeBytes, parseSysctl, parseVmStat, usedBytes } from './parse'

export * from './parse'

const SYSCTL_ARGS = ['hw.memsize', 'machdep.cpu.brand_string']

async function run(host: ProviderHost, cmd: string, args: string[], signal?: AbortSignal): Promise<string> {
  const res = await host.exec(cmd, args, { timeoutMs: 5000, signal })
  if (res.exitCode !== 0) throw new Error(`${cmd} exited ${res.exitCode}: ${res.stderr.trim()}`)
  return res.stdout
}

/**
 * Apple Silicon unified memory: total from `sysctl hw.memsize`, used from `vm_stat` with the page size it
 * prints. Only on darwin/arm64. Supersedes `ram`: on these machines the RAM is the GPU's memory, so it must
 * not be counted twice.
 */
export function createAppleProvider(): MemoryProvider {
  return defineProvider({
    name: 'apple',
    priority: 20,
    supersedes: ['ram'],
    async isAvailable(host) {
      if (host.platform !== 'darwin' || host.arch !== 'arm64') return false
      return memsizeBytes(parseSysctl(await run(host, 'sysctl', SYSCTL_ARGS))) > 0
    },
    async snapshot(host, signal) {
      const [sysctlOut, vmOut] = await Promise.all([
        run(host, 'sysctl', SYSCTL_ARGS, signal),
        run(host, 'vm_stat', [], signal),
      ])
      const sysctl = parseSysctl(sysctlOut)
      const total = memsizeBytes(sysctl)
      const used = usedBytes(parseVmStat(vmOut), total)
      const chip = sysctl.get('machdep.cpu.brand_string') || 'Apple Silicon'
      return [
        {
          localId: 'unified',
          name: `${chip} unified memory`,
          kind: 'unified',
          totalBytes: total,
          usedBytes: used,
        },
      ]
    },
  })
}

export const provider: MemoryProvider = createAppleProvider()
export default provider

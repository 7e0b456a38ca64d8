import { defineProvider, type MemoryProvider, type ProviderHost } from '@sharedllm/core'
import { NvidiaLoop } from './loop'
import { gpusFromRows, type NvidiaGpu, parseQueryCsv, parseTable, QUERY_FIELDS, toDevices } from './parse'

export * from './parse'
export { NvidiaLoop } from './loop'

const QUERY_ARGS = [`--query-gpu=${QUERY_FIELDS.join(',')}`, '--format=csv,nounits']

export interface NvidiaProviderOptions {
  /** The nvidia-smi binary. @default 'nvidia-smi' */
  command?: string
  /** Limit for one nvidia-smi run (the probe loop also aborts hung runs). @default 5000 */
  timeoutMs?: number
  /**
   * Period of nvidia-smi's own loop mode (`-lms`): one long-running nvidia-smi instead of one per sample.
   * 0 turns it off. Used only where the host can stream (`spawnStream`). @default 3000
   */
  loopMs?: number
  /** Wait at least this long before restarting a loop that ended. @default 30000 */
  loopRestartMs?: number
}

async function readGpus(
  host: ProviderHost,
  cmd: string,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<NvidiaGpu[]> {
  const res = await host.exec(cmd, QUERY_ARGS, { timeoutMs, signal })
  if (res.exitCode === 0) return gpusFromRows(parseQueryCsv(res.stdout))
  // Some drivers refuse a field they do not know; the plain table still shows memory per GPU.
  const table = await host.exec(cmd, [], { timeoutMs, signal })
  if (table.exitCode === 0) {
    const gpus = parseTable(table.stdout)
    if (gpus.length > 0) return gpus
  }
  const why = (res.stderr || res.stdout).trim().split('\n')[0] || `exit code ${res.exitCode}`
  throw new Error(`nvidia-smi failed (exit ${res.exitCode}): ${why}`)
}

/** NVIDIA GPUs through `nvidia-smi --query-gpu`: every GPU, identified by UUID. */
export function createNvidiaProvider(opts: NvidiaProviderOptions = {}): MemoryProvider {
  const cmd = opts.command ?? 'nvidia-smi'
  const timeoutMs = opts.timeoutMs ?? 5000
  const loopMs = opts.loopMs ?? 3000
  const loopRestartMs = opts.loopRestartMs ?? 30_000
  let loop: NvidiaLoop | null = null
  let loopStartedAt = Number.NEGATIVE_INFINITY
  return defineProvider({
    name: 'nvidia',
    priority: 30,
    async isAvailable(host) {
      // No nvidia-smi, or one that cannot reach a driver (exit 9), or no GPU: not available.
      const res = await host.exec(cmd, QUERY_ARGS, { timeoutMs })
      return res.exitCode === 0 && gpusFromRows(parseQueryCsv(res.stdout)).length > 0
    },
    async snapshot(host, signal) {
      const ram = { totalBytes: host.totalMemBytes(), freeBytes: host.freeMemBytes() }
      const fresh = loop && !loop.dead && loop.host === host && loop.latest
      if (fresh && Date.now() - fresh.at <= 2 * loopMs + 1000) return toDevices(fresh.gpus, ram)
      const gpus = await readGpus(host, cmd, timeoutMs, signal)
      if (gpus.length === 0) throw new Error('nvidia-smi listed no GPU')
      const canLoop = loopMs > 0 && host.spawnStream !== undefined && gpus.every((g) => g.uuid !== null)
      if (
        canLoop &&
        (!loop || loop.dead || loop.host !== host) &&
        Date.now() - loopStartedAt >= loopRestartMs
      ) {
        loop?.stop()
        loopStartedAt = Date.now()
        loop = new NvidiaLoop(host, cmd, [...QUERY_ARGS, `-lms`, String(loopMs)], gpus.length)
      }
      return toDevices(gpus, ram)
    },
    close() {
      loop?.stop()
      loop = null
    },
  })
}

export const provider: MemoryProvider = createNvidiaProvider()
export default provider

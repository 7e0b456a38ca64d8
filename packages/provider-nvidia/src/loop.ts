import type { ProviderHost, RunningCommand } from '@sharedllm/core'
import { gpusFromRows, headerField, type NvidiaGpu, parseQueryCsv, type QueryRow } from './parse'

/**
 * One long-running `nvidia-smi --query-gpu=… -lms <ms>`: nvidia-smi prints the header once, then one row
 * per GPU every period. Spawning nvidia-smi per sample costs a process start and an NVML initialisation each
 * time; this keeps one process and only parses lines. Rows are grouped into samples by the GPU count of the
 * one-shot query that started the loop; any surprise (a parse error, an exit) ends the loop and the
 * provider falls back to one-shot queries.
 */
export class NvidiaLoop {
  latest: { gpus: NvidiaGpu[]; at: number } | null = null
  dead = false
  private buf = ''
  private header: string[] | null = null
  private pending: QueryRow[] = []
  private readonly proc: RunningCommand

  constructor(
    readonly host: ProviderHost,
    cmd: string,
    args: string[],
    private readonly gpuCount: number,
    private readonly now: () => number = Date.now,
  ) {
    this.proc = host.spawnStream!(cmd, args, (chunk) => this.onChunk(chunk))
    void this.proc.exited.then(() => {
      this.dead = true
    })
  }

  private onChunk(chunk: string): void {
    this.buf += chunk
    const lines = this.buf.split(/\r?\n/)
    this.buf = lines.pop() ?? ''
    try {
      for (const line of lines) {
        if (line.trim() === '') continue
        if (!this.header) {
          this.header = line.split(',').map((c) => headerField(c.trim()))
          continue
        }
        this.pending.push(...parseQueryCsv(line, this.header))
        if (this.pending.length === this.gpuCount) {
          this.latest = { gpus: gpusFromRows(this.pending), at: this.now() }
          this.pending = []
        }
      }
    } catch {
      this.stop()
    }
  }

  stop(): void {
    this.dead = true
    this.proc.stop()
  }
}

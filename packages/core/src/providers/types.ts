import type { MemoryDevice, MemoryKind } from '../protocol/types'

export interface ExecOptions {
  /** Kill the command after this long and reject with a TIMEOUT error. */
  timeoutMs?: number
  /** Aborting kills the command and rejects with a CANCELLED error. */
  signal?: AbortSignal
}

export interface ExecResult {
  stdout: string
  stderr: string
  exitCode: number
}

/**
 * Everything a provider may touch on the machine. Providers never import `fs`, `os` or `child_process`
 * themselves, so the conformance suite can hand them a fake host that replays captured outputs.
 */
export interface ProviderHost {
  platform: NodeJS.Platform
  arch: string
  /**
   * Runs a command without a shell. A non-zero exit resolves (check `exitCode`); a command that is not
   * installed rejects with a NOT_FOUND SharedLLMError whose `details.code` is `ENOENT` (see `isCommandMissing`).
   */
  exec(cmd: string, args: string[], opts?: ExecOptions): Promise<ExecResult>
  /** Reads a text file; rejects with the Node error (code ENOENT, EACCES...) when it cannot. */
  readFile(path: string): Promise<string>
  /** Names in a directory; rejects with the Node error when it cannot. */
  readdir(path: string): Promise<string[]>
  /** `os.totalmem()` on a real host. */
  totalMemBytes(): number
  /** `os.freemem()` on a real host (MemAvailable on Linux). */
  freeMemBytes(): number
  /**
   * Starts a long-running command (a tool's own loop mode, such as `nvidia-smi -lms`) and hands each stdout
   * chunk to `onStdout`. Optional: a provider must work without it, falling back to `exec` per sample.
   */
  spawnStream?(cmd: string, args: string[], onStdout: (chunk: string) => void): RunningCommand
}

export interface RunningCommand {
  /** Settles when the command ends: its exit code, or the error that kept it from starting (ENOENT...). */
  readonly exited: Promise<{ exitCode: number | null; error?: Error }>
  /** Ends the command (SIGTERM); safe to call more than once. */
  stop(): void
}

export interface MemoryProvider {
  /** Lower-case word, the same as the package's suffix: `nvidia` for `@sharedllm/provider-nvidia`. */
  name: string
  /** Higher wins when two providers share a name or report the same device id. */
  priority: number
  /** Providers whose devices this one replaces when both are available (apple: `['ram']`). */
  supersedes?: string[]
  /** Never throws: a missing tool, a wrong platform or any failure means `false`. */
  isAvailable(host: ProviderHost): Promise<boolean>
  /**
   * Current readings; ids are `name:localId`, byte counts are validated. Failures reject with a
   * PROVIDER_FAILED (or TIMEOUT/CANCELLED) SharedLLMError that keeps the original as `cause`.
   */
  snapshot(host: ProviderHost, signal?: AbortSignal): Promise<MemoryDevice[]>
  /** Releases long-lived resources (a looping child process); called by `ProviderSet.stop()`. */
  close?(): Promise<void>
}

/** One device as a provider's own code returns it; `defineProvider` stamps the id and checks the numbers. */
export interface ProviderDeviceInput {
  /** Id within the vendor (GPU UUID, PCI address, `system`); the `vendor:` prefix is added if missing. */
  localId: string
  name: string
  kind: MemoryKind
  totalBytes: number
  usedBytes: number
  /** @default totalBytes - usedBytes */
  freeBytes?: number
}

export interface ProviderDefinition {
  name: string
  /** @default 0 */
  priority?: number
  supersedes?: string[]
  /** May throw or return a non-boolean; anything but `true` means not available. @default () => true */
  isAvailable?(host: ProviderHost): Promise<boolean> | boolean
  snapshot(host: ProviderHost, signal?: AbortSignal): Promise<ProviderDeviceInput[]> | ProviderDeviceInput[]
  close?(): Promise<void> | void
}

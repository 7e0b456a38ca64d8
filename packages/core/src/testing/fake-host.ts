import { posix } from 'node:path'
import { SharedLLMError } from '../errors'
import { commandMissing } from '../providers/errors'
import type { ExecOptions, ExecResult, ProviderHost } from '../providers/types'

/** What a fake command does: print text, exit with a code, hang, or fail to start. */
export type FakeCommandResult =
  | string
  | {
      stdout?: string
      stderr?: string
      /** @default 0 */
      exitCode?: number
      /** Answer after this long (still honours the timeout and abort signal). */
      delayMs?: number
      /** Never answer; only a timeout or an abort ends the call. */
      hang?: boolean
      /** Reject with this error instead of answering. */
      error?: Error
    }

/** Answers for a command, keyed by program name; a function sees the arguments. */
export type FakeCommand = FakeCommandResult | ((args: string[]) => FakeCommandResult)

export interface FakeHostOptions {
  /** @default 'linux' */
  platform?: NodeJS.Platform
  /** @default 'x64' */
  arch?: string
  /** Installed commands; any other command rejects as not installed (ENOENT). */
  commands?: Record<string, FakeCommand>
  /** Files by absolute path (the shape of the sysfs fixtures); their parent directories exist too. */
  files?: Record<string, string>
  /** Extra directories that exist (possibly empty). */
  dirs?: string[]
  /**
   * Long-running commands for `spawnStream`, keyed by program name: called with the arguments and a handle
   * to write stdout chunks or exit; may return a function run on `stop()`. Absent: `spawnStream` rejects
   * the command as not installed (through `exited`).
   */
  streams?: Record<string, (args: string[], io: FakeStreamIO) => (() => void) | undefined>
  /** @default 16 GiB */
  totalMemBytes?: number
  /** @default 8 GiB */
  freeMemBytes?: number
}

export interface FakeStreamIO {
  write(chunk: string): void
  exit(code: number | null): void
}

export interface FakeHostCall {
  cmd: string
  args: string[]
}

/** A `ProviderHost` that replays captured outputs; it records calls and can be changed between samples. */
export interface FakeHost extends ProviderHost {
  readonly calls: FakeHostCall[]
  setCommand(cmd: string, answer: FakeCommand | undefined): void
  setFile(path: string, content: string | undefined): void
  setMemory(totalBytes: number, freeBytes: number): void
  /** A copy whose every command output and file content is replaced by `text` (for garbage-input tests). */
  withAllOutputs(text: string): FakeHost
  /** A copy where every command exits with `exitCode` and prints `stderr`. */
  withFailingCommands(exitCode: number, stderr: string): FakeHost
}

const GIB = 1024 ** 3

export function createFakeHost(opts: FakeHostOptions = {}): FakeHost {
  const commands = new Map(Object.entries(opts.commands ?? {}))
  const files = new Map(Object.entries(opts.files ?? {}))
  const extraDirs = new Set((opts.dirs ?? []).map((d) => posix.normalize(d)))
  let total = opts.totalMemBytes ?? 16 * GIB
  let free = opts.freeMemBytes ?? 8 * GIB
  const calls: FakeHostCall[] = []

  const dirEntries = (path: string): string[] | undefined => {
    const dir = posix.normalize(path).replace(/\/$/, '') || '/'
    const prefix = dir === '/' ? '/' : `${dir}/`
    const names = new Set<string>()
    for (const p of [...files.keys(), ...extraDirs]) {
      if (p.startsWith(prefix) && p.length > prefix.length) names.add(p.slice(prefix.length).split('/')[0]!)
    }
    if (names.size === 0 && !extraDirs.has(dir)) return undefined
    return [...names].sort()
  }

  const host: FakeHost = {
    platform: opts.platform ?? 'linux',
    arch: opts.arch ?? 'x64',
    calls,
    async exec(cmd: string, args: string[], execOpts: ExecOptions = {}): Promise<ExecResult> {
      calls.push({ cmd, args: [...args] })
      execOpts.signal?.throwIfAborted()
      const answer = commands.get(cmd)
      if (answer === undefined) throw commandMissing(cmd)
      const r = typeof answer === 'function' ? answer(args) : answer
      const res = typeof r === 'string' ? { stdout: r } : r
      if (res.hang || res.delayMs) await wait(cmd, res.hang ? undefined : res.delayMs, execOpts)
      if (res.error) throw res.error
      return { stdout: res.stdout ?? '', stderr: res.stderr ?? '', exitCode: res.exitCode ?? 0 }
    },
    async readFile(path: string): Promise<string> {
      const content = files.get(posix.normalize(path))
      if (content === undefined) {
        if (dirEntries(path))
          throw nodeError('EISDIR', `EISDIR: illegal operation on a directory, read '${path}'`)
        throw nodeError('ENOENT', `ENOENT: no such file or directory, open '${path}'`)
      }
      return content
    },
    async readdir(path: string): Promise<string[]> {
      const names = dirEntries(path)
      if (!names) throw nodeError('ENOENT', `ENOENT: no such file or directory, scandir '${path}'`)
      return names
    },
    totalMemBytes: () => total,
    freeMemBytes: () => free,
    spawnStream(cmd, args, onStdout) {
      calls.push({ cmd, args: [...args] })
      let settle!: (r: { exitCode: number | null; error?: Error }) => void
      const exited = new Promise<{ exitCode: number | null; error?: Error }>((r) => {
        settle = r
      })
      let done = false
      const exit = (code: number | null, error?: Error) => {
        if (done) return
        done = true
        settle(error ? { exitCode: null, error } : { exitCode: code })
      }
      const start = opts.streams?.[cmd]
      if (!start) {
        exit(null, commandMissing(cmd))
        return { exited, stop() {} }
      }
      const onStop = start([...args], { write: (c) => !done && onStdout(c), exit: (c) => exit(c) })
      return {
        exited,
        stop() {
          if (done) return
          onStop?.()
          exit(null)
        },
      }
    },
    setCommand(cmd, answer) {
      if (answer === undefined) commands.delete(cmd)
      else commands.set(cmd, answer)
    },
    setFile(path, content) {
      if (content === undefined) files.delete(posix.normalize(path))
      else files.set(posix.normalize(path), content)
    },
    setMemory(t, f) {
      total = t
      free = f
    },
    withAllOutputs(text) {
      return createFakeHost({
        ...opts,
        totalMemBytes: total,
        freeMemBytes: free,
        commands: Object.fromEntries([...commands.keys()].map((k) => [k, text])),
        files: Object.fromEntries([...files.keys()].map((k) => [k, text])),
      })
    },
    withFailingCommands(exitCode, stderr) {
      return createFakeHost({
        ...opts,
        totalMemBytes: total,
        freeMemBytes: free,
        commands: Object.fromEntries([...commands.keys()].map((k) => [k, { exitCode, stderr }])),
        files: Object.fromEntries(files),
      })
    },
  }
  return host
}

function wait(cmd: string, ms: number | undefined, opts: ExecOptions): Promise<void> {
  return new Promise((resolve, reject) => {
    const timers: NodeJS.Timeout[] = []
    const done = (err?: Error) => {
      for (const t of timers) clearTimeout(t)
      opts.signal?.removeEventListener('abort', onAbort)
      if (err) reject(err)
      else resolve()
    }
    const onAbort = () =>
      done(new SharedLLMError('CANCELLED', `'${cmd}' was cancelled`, { details: { command: cmd } }))
    opts.signal?.addEventListener('abort', onAbort, { once: true })
    if (ms !== undefined) timers.push(setTimeout(() => done(), ms))
    if (opts.timeoutMs !== undefined) {
      timers.push(
        setTimeout(
          () =>
            done(
              new SharedLLMError('TIMEOUT', `'${cmd}' did not finish within ${opts.timeoutMs} ms`, {
                details: { command: cmd },
              }),
            ),
          opts.timeoutMs,
        ),
      )
    }
  })
}

function nodeError(code: string, message: string): NodeJS.ErrnoException {
  return Object.assign(new Error(message), { code })
}

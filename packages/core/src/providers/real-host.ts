import { spawn } from 'node:child_process'
import { readdir, readFile } from 'node:fs/promises'
import { arch, freemem, platform, totalmem } from 'node:os'
import { execa } from 'execa'
import { SharedLLMError } from '../errors'
import { commandMissing } from './errors'
import type { ExecOptions, ExecResult, ProviderHost, RunningCommand } from './types'

/** Default limit for one command when the caller gives none; the probe loop passes its own. */
const DEFAULT_EXEC_TIMEOUT_MS = 10_000
/** Vendor tools print kilobytes; anything near this is a runaway process, not an answer. */
const MAX_OUTPUT_BYTES = 8 * 1024 * 1024

/** The host of the machine this process runs on: execa for commands, `fs` and `os` for the rest. */
export function createRealHost(): ProviderHost {
  return {
    platform: platform(),
    arch: arch(),
    exec: realExec,
    readFile: (path) => readFile(path, 'utf8'),
    readdir: (path) => readdir(path),
    totalMemBytes: () => totalmem(),
    freeMemBytes: () => freemem(),
    spawnStream,
  }
}

function spawnStream(cmd: string, args: string[], onStdout: (chunk: string) => void): RunningCommand {
  const child = spawn(cmd, args, {
    stdio: ['ignore', 'pipe', 'ignore'],
    env: { ...process.env, LC_ALL: 'C', LANG: 'C' },
  })
  child.stdout.setEncoding('utf8')
  child.stdout.on('data', onStdout)
  const exited = new Promise<{ exitCode: number | null; error?: Error }>((resolve) => {
    child.once('error', (err: NodeJS.ErrnoException) =>
      resolve({ exitCode: null, error: err.code === 'ENOENT' ? commandMissing(cmd, err) : err }),
    )
    child.once('close', (code) => resolve({ exitCode: code }))
  })
  return {
    exited,
    stop: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM')
    },
  }
}

async function realExec(cmd: string, args: string[], opts: ExecOptions = {}): Promise<ExecResult> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_EXEC_TIMEOUT_MS
  opts.signal?.throwIfAborted()
  const res = await execa(cmd, args, {
    reject: false,
    timeout: timeoutMs,
    ...(opts.signal ? { cancelSignal: opts.signal } : {}),
    forceKillAfterDelay: 1000,
    maxBuffer: MAX_OUTPUT_BYTES,
    stdin: 'ignore',
    stripFinalNewline: false,
    // Vendor tools localise numbers and messages; parsers expect the C locale.
    env: { LC_ALL: 'C', LANG: 'C' },
  })
  if (res.timedOut) {
    throw new SharedLLMError('TIMEOUT', `'${cmd}' did not finish within ${timeoutMs} ms`, {
      details: { command: cmd },
    })
  }
  if (res.isCanceled) {
    throw new SharedLLMError('CANCELLED', `'${cmd}' was cancelled`, { details: { command: cmd } })
  }
  const code = (res as { code?: string }).code
  if (code === 'ENOENT') throw commandMissing(cmd, res.cause)
  if (res.exitCode === undefined) {
    throw new SharedLLMError('PROVIDER_FAILED', `'${cmd}' could not run: ${res.shortMessage}`, {
      cause: res.cause,
      details: { command: cmd, code },
    })
  }
  return { stdout: String(res.stdout ?? ''), stderr: String(res.stderr ?? ''), exitCode: res.exitCode }
}

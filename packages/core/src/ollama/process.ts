import { type ChildProcess, spawn } from 'node:child_process'
import { accessSync, constants, readdirSync, readFileSync, statSync } from 'node:fs'
import { isIP } from 'node:net'
import { delimiter, isAbsolute, join } from 'node:path'

/**
 * Where the binary is: the `ollama_bin` setting when set (it must be an executable file), else the first
 * `ollama` on PATH. Returns the path, or a reason it was not found that tells the user what to do.
 */
export function findOllamaBinary(
  configured: string | null,
  env: NodeJS.ProcessEnv,
): { path: string } | { error: string } {
  if (configured) {
    if (!isAbsolute(configured)) return { error: `ollama_bin must be an absolute path, got ${configured}` }
    return isExecutableFile(configured)
      ? { path: configured }
      : { error: `ollama_bin ${configured} is not an executable file` }
  }
  const names = process.platform === 'win32' ? ['ollama.exe', 'ollama.cmd', 'ollama'] : ['ollama']
  for (const dir of (env.PATH ?? env.Path ?? '').split(delimiter)) {
    if (!dir) continue
    for (const name of names) {
      const candidate = join(dir, name)
      if (isExecutableFile(candidate)) return { path: candidate }
    }
  }
  return {
    error:
      'ollama is not installed: no `ollama` on PATH (install it from https://ollama.com or set ollama_bin)',
  }
}

function isExecutableFile(path: string): boolean {
  try {
    if (!statSync(path).isFile()) return false
    accessSync(path, constants.X_OK)
    return true
  } catch {
    return false
  }
}

/**
 * The OLLAMA_HOST value for a child serving `hostUrl`, or an error when that URL is not a plain-HTTP
 * loopback address: sharedLLM only ever starts an Ollama that nobody else on the network can reach.
 */
export function loopbackListenAddress(hostUrl: string): { value: string } | { error: string } {
  let url: URL
  try {
    url = new URL(hostUrl)
  } catch {
    return { error: `ollama_host ${hostUrl} is not a URL` }
  }
  if (url.protocol !== 'http:')
    return { error: `cannot start Ollama for ${hostUrl}: ollama serve speaks plain http` }
  const name = url.hostname.replace(/^\[|\]$/g, '')
  const port = url.port || '80'
  if (name === 'localhost' || (isIP(name) === 4 && name.startsWith('127.'))) {
    return { value: `${name === 'localhost' ? '127.0.0.1' : name}:${port}` }
  }
  if (name === '::1') return { value: `[::1]:${port}` }
  return {
    error: `ollama_host ${hostUrl} is not a loopback address; sharedLLM only starts Ollama on loopback (use http://127.0.0.1:11434)`,
  }
}

/** Where the Linux service keeps its models (install.sh: user `ollama`, home /usr/share/ollama). */
export const SYSTEM_MODELS_DIR = '/usr/share/ollama/.ollama/models'

/**
 * The model store an Ollama we start should use: OLLAMA_MODELS when the environment sets it, else the
 * system service's store when it exists and is readable (so the models the service pulled are there),
 * else Ollama's own default (`~/.ollama/models`, envconfig/config.go Models), reported as null.
 */
export function modelStore(env: NodeJS.ProcessEnv, systemDir = SYSTEM_MODELS_DIR): string | null {
  if (env.OLLAMA_MODELS) return env.OLLAMA_MODELS
  try {
    if (statSync(systemDir).isDirectory()) {
      accessSync(systemDir, constants.R_OK | constants.X_OK)
      return systemDir
    }
  } catch {
    // absent or not readable
  }
  return null
}

/**
 * Spawns `ollama serve` in its own process group, so that stopping it reaches its runner processes
 * (llm/server.go starts each runner as a child) and none is left holding GPU memory.
 */
export function spawnOllama(
  bin: string,
  listen: string,
  env: NodeJS.ProcessEnv,
  extra: Record<string, string> = {},
): ChildProcess {
  return spawn(bin, ['serve'], {
    env: { ...env, ...extra, OLLAMA_HOST: listen },
    stdio: ['ignore', 'pipe', 'pipe'],
    windowsHide: true,
    detached: process.platform !== 'win32',
  })
}

/** Pids of the live (not zombie) processes in process group `pgid` (Linux /proc; elsewhere the leader only). */
export function groupMembers(pgid: number): number[] {
  if (process.platform !== 'linux') return isProcessGone(pgid) ? [] : [pgid]
  const out: number[] = []
  let entries: string[]
  try {
    entries = readdirSync('/proc')
  } catch {
    return isProcessGone(pgid) ? [] : [pgid]
  }
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue
    try {
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8')
      // pid (comm) state ppid pgrp ...; comm may hold spaces and parentheses, so read after the last ')'.
      const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      if (rest[0] === 'Z' || rest[0] === 'X') continue
      if (Number(rest[2]) === pgid) out.push(Number(e))
    } catch {
      // exited while we looked
    }
  }
  return out
}

function signalGroup(pid: number, signal: NodeJS.Signals): boolean {
  try {
    process.kill(process.platform === 'win32' ? pid : -pid, signal)
    return true
  } catch {
    try {
      process.kill(pid, signal)
      return true
    } catch {
      return false
    }
  }
}

/** SIGKILL to the whole group now (the process `exit` handler, which cannot wait). */
export function killGroup(pid: number): void {
  signalGroup(pid, 'SIGKILL')
}

/** True when the process no longer runs. A zombie counts as gone: PID 1 may never reap it (STACK.md). */
export function isProcessGone(pid: number): boolean {
  if (process.platform === 'linux') {
    try {
      const status = readFileSync(`/proc/${pid}/status`, 'utf8')
      return /^State:\s+[ZX]/m.test(status)
    } catch {
      return true
    }
  }
  try {
    process.kill(pid, 0)
    return false
  } catch {
    return true
  }
}

/**
 * Stops `ollama serve` and its runners: SIGTERM to the process group (Ollama stops its runners on
 * SIGTERM, cmd/cmd.go and server/sched.go), then waiting until the child and every process of its group
 * are gone, then SIGKILL to the whole group after `graceMs`. Resolves once the child exited and the group
 * is empty (or, after the SIGKILL, a short while later whatever remains).
 */
export async function terminate(child: ChildProcess, graceMs: number): Promise<void> {
  const pid = child.pid
  if (pid === undefined) return
  const exited = new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve()
    else child.once('exit', () => resolve())
  })
  const alive = () => groupMembers(pid).length > 0 || (child.exitCode === null && child.signalCode === null)
  if (!alive()) return
  signalGroup(pid, 'SIGTERM')
  const deadline = Date.now() + graceMs
  while (alive() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25))
  if (alive()) {
    signalGroup(pid, 'SIGKILL')
    const last = Date.now() + 2000
    while (groupMembers(pid).length > 0 && Date.now() < last) await new Promise((r) => setTimeout(r, 25))
  }
  await Promise.race([exited, new Promise((r) => setTimeout(r, 2000))])
}

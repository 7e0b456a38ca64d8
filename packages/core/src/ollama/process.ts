import { type ChildProcess, spawn } from 'node:child_process'
import { accessSync, constants, readFileSync, statSync } from 'node:fs'
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

export function spawnOllama(bin: string, listen: string, env: NodeJS.ProcessEnv): ChildProcess {
  return spawn(bin, ['serve'], {
    env: { ...env, OLLAMA_HOST: listen },
    stdio: ['ignore', 'pipe', 'pipe'],
    windowsHide: true,
  })
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

/** SIGTERM, then SIGKILL after `graceMs`; resolves once the child has exited. */
export function terminate(child: ChildProcess, graceMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve()
  return new Promise((resolve) => {
    const killTimer = setTimeout(() => child.kill('SIGKILL'), graceMs)
    child.once('exit', () => {
      clearTimeout(killTimer)
      resolve()
    })
    if (!child.kill('SIGTERM')) {
      // The signal could not be sent: the process is already gone.
      clearTimeout(killTimer)
      resolve()
    }
  })
}

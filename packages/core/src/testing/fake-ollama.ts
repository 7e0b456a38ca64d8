import { type ChildProcess, spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { createServer } from 'node:net'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

/**
 * The folder holding the fake `ollama` executable (prepend it to PATH to make `ollama serve` start the
 * fake). Found by walking up from this module, so it works from `src/testing` and from `dist/testing`.
 */
export const fakeOllamaDir: string = findAssets()
export const fakeOllamaBin: string = join(fakeOllamaDir, 'ollama')

function findAssets(): string {
  let dir = dirname(fileURLToPath(import.meta.url))
  for (let i = 0; i < 4; i++) {
    const candidate = join(dir, 'testing-assets', 'fake-ollama')
    if (existsSync(join(candidate, 'ollama'))) return candidate
    dir = dirname(dir)
  }
  throw new Error('@sharedllm/core/testing: testing-assets/fake-ollama is missing from the package')
}

export interface FakeOllamaOptions {
  /** `normal` | `hang` | `slow:<ms>` | `crash-after:<ms>` (FAKE_OLLAMA_MODE). @default 'normal' */
  mode?: string
  /** Delay between streamed chunks and pull lines (FAKE_OLLAMA_CHUNK_DELAY_MS). @default 0 */
  chunkDelayMs?: number
  /** Exact number of reply chunks for chat/generate/completions (FAKE_OLLAMA_CHUNKS). */
  chunks?: number
  /** Completed-progress lines for the big layer of a pull (FAKE_OLLAMA_PULL_STEPS). @default 4 */
  pullSteps?: number
  /** Record requests for `requests()` (FAKE_OLLAMA_RECORD). @default true */
  record?: boolean
  /** Listen address. @default '127.0.0.1:0' (a free port) */
  host?: string
  /** Extra environment for the fake. */
  env?: Record<string, string>
  /** How long to wait for it to listen. @default 10000 */
  startTimeoutMs?: number
}

export interface RecordedRequest {
  method: string
  path: string
  /** The query string including `?`, or ''. */
  query: string
  headers: Record<string, string | string[] | undefined>
  /** Parsed JSON body, the raw text when it was not JSON, or null when empty. */
  body: unknown
  at: number
}

export interface FakeOllama {
  /** `http://127.0.0.1:<port>` */
  url: string
  /** `127.0.0.1:<port>`, as OLLAMA_HOST takes it. */
  host: string
  pid: number
  requests(): Promise<RecordedRequest[]>
  clearRequests(): Promise<void>
  /** Switches the failure mode at runtime (works even while hanging). */
  setMode(mode: string): Promise<void>
  /** Everything it printed so far (its log). */
  output(): string
  /** SIGTERM, then SIGKILL after 2 s; resolves when it has exited. */
  stop(): Promise<void>
}

/** Spawns the fake `ollama serve` as a real process on a free loopback port. */
export async function startFakeOllama(opts: FakeOllamaOptions = {}): Promise<FakeOllama> {
  const env: Record<string, string> = {
    ...(process.env as Record<string, string>),
    OLLAMA_HOST: opts.host ?? '127.0.0.1:0',
    FAKE_OLLAMA_RECORD: opts.record === false ? '0' : '1',
    ...(opts.mode ? { FAKE_OLLAMA_MODE: opts.mode } : {}),
    ...(opts.chunkDelayMs !== undefined ? { FAKE_OLLAMA_CHUNK_DELAY_MS: String(opts.chunkDelayMs) } : {}),
    ...(opts.chunks !== undefined ? { FAKE_OLLAMA_CHUNKS: String(opts.chunks) } : {}),
    ...(opts.pullSteps !== undefined ? { FAKE_OLLAMA_PULL_STEPS: String(opts.pullSteps) } : {}),
    ...opts.env,
  }
  const child = spawn(process.execPath, [fakeOllamaBin, 'serve'], { env, stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  child.stdout.setEncoding('utf8').on('data', (s: string) => {
    output += s
  })
  child.stderr.setEncoding('utf8')

  const listening = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`fake ollama did not start within ${opts.startTimeoutMs ?? 10_000} ms:\n${output}`))
    }, opts.startTimeoutMs ?? 10_000)
    child.stderr.on('data', (s: string) => {
      output += s
      const m = /Listening on (\S+) /.exec(output)
      if (m?.[1]) {
        clearTimeout(timer)
        resolve(m[1])
      }
    })
    child.once('exit', (code, signal) => {
      clearTimeout(timer)
      reject(new Error(`fake ollama exited (${code ?? signal}) before listening:\n${output}`))
    })
  })

  const url = `http://${listening}`
  return {
    url,
    host: listening,
    pid: child.pid!,
    async requests() {
      return (await (await fetch(`${url}/__fake/requests`)).json()) as RecordedRequest[]
    },
    async clearRequests() {
      await (await fetch(`${url}/__fake/requests`, { method: 'DELETE' })).arrayBuffer()
    },
    async setMode(mode: string) {
      const res = await fetch(`${url}/__fake/mode`, { method: 'POST', body: JSON.stringify({ mode }) })
      if (!res.ok) throw new Error(`fake ollama refused mode ${mode}: ${await res.text()}`)
    },
    output: () => output,
    stop: () => stopChild(child),
  }
}

function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve()
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 2000)
    child.once('exit', () => {
      clearTimeout(timer)
      resolve()
    })
    child.kill('SIGTERM')
  })
}

/** A loopback port that was free a moment ago (for tests that need an address nothing answers on yet). */
export function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      const port = typeof address === 'object' && address ? address.port : 0
      server.close(() => resolve(port))
    })
  })
}

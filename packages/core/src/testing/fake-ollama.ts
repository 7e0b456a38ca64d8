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
  /**
   * `normal` | `hang` | `slow:<ms>` | `crash-after:<ms>` | `queue-full` (every inference request is Ollama's
   * 503) | `runner-crash` (the model's runner process dies mid-answer) (FAKE_OLLAMA_MODE). @default 'normal'
   */
  mode?: string
  /** Simulated total VRAM, e.g. `'24GiB'` or bytes (FAKE_OLLAMA_VRAM); decides the default context. @default '8GiB' */
  vram?: string | number
  /** Generation speed; non-streaming answers take pieces / tokensPerSecond (FAKE_OLLAMA_TOKENS_PER_SEC). @default 2000 */
  tokensPerSecond?: number
  /** "GPU discovery": HTTP is answered only after this (FAKE_OLLAMA_DISCOVERY_MS). @default 0 */
  discoveryMs?: number
  /** Extra time a model load takes after its runner process started (FAKE_OLLAMA_LOAD_MS). @default 0 */
  loadMs?: number
  /** Stand-ins with the same id share one simulated GPU, orphaned runners included (FAKE_OLLAMA_GPU_ID). */
  gpuId?: string
  /** Catalog models installed besides the 16 captured ones: names or `'all'` (FAKE_OLLAMA_EXTRA_MODELS). */
  extraModels?: string[] | 'all'
  /** `open`: any valid name can be pulled; `catalog`: only catalog models, like a real registry (FAKE_OLLAMA_REGISTRY). @default 'open' */
  registry?: 'open' | 'catalog'
  /**
   * `model`: a thinking model (qwen3, gpt-oss, deepseek-r1) streams `thinking` before its answer unless the
   * request says `think: false`, as Ollama does; `off`: it thinks only when asked (FAKE_OLLAMA_THINK_DEFAULT).
   * @default 'off' here, so suites written before the thinking stream keep their chunk counts; the binary
   * itself defaults to `model`.
   */
  thinking?: 'model' | 'off'
  /** Ollama's own variables, passed as they are (OLLAMA_CONTEXT_LENGTH, OLLAMA_NUM_PARALLEL, ...). */
  ollamaEnv?: Partial<
    Record<
      | 'OLLAMA_CONTEXT_LENGTH'
      | 'OLLAMA_NUM_PARALLEL'
      | 'OLLAMA_KEEP_ALIVE'
      | 'OLLAMA_MAX_QUEUE'
      | 'OLLAMA_MAX_LOADED_MODELS'
      | 'OLLAMA_KV_CACHE_TYPE'
      | 'OLLAMA_NO_CLOUD'
      | 'OLLAMA_MODELS'
      | 'OLLAMA_GPU_OVERHEAD',
      string
    >
  >
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
  /** The runner child processes of the loaded models (one per model, as Ollama's llama-server runners). */
  runners(): Promise<{ model: string; pid: number; port: number }[]>
  /** Resolves once GPU discovery is over and HTTP is answered. */
  ready(): Promise<void>
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
    ...(opts.vram !== undefined ? { FAKE_OLLAMA_VRAM: String(opts.vram) } : {}),
    ...(opts.tokensPerSecond !== undefined
      ? { FAKE_OLLAMA_TOKENS_PER_SEC: String(opts.tokensPerSecond) }
      : {}),
    ...(opts.discoveryMs !== undefined ? { FAKE_OLLAMA_DISCOVERY_MS: String(opts.discoveryMs) } : {}),
    ...(opts.loadMs !== undefined ? { FAKE_OLLAMA_LOAD_MS: String(opts.loadMs) } : {}),
    ...(opts.extraModels !== undefined
      ? { FAKE_OLLAMA_EXTRA_MODELS: opts.extraModels === 'all' ? 'all' : opts.extraModels.join(',') }
      : {}),
    ...(opts.registry !== undefined ? { FAKE_OLLAMA_REGISTRY: opts.registry } : {}),
    ...(opts.gpuId !== undefined ? { FAKE_OLLAMA_GPU_ID: opts.gpuId } : {}),
    FAKE_OLLAMA_THINK_DEFAULT: opts.thinking ?? process.env.FAKE_OLLAMA_THINK_DEFAULT ?? 'off',
    // an orphaned runner (after a SIGKILL of the fake) goes away soon in tests
    FAKE_OLLAMA_ORPHAN_TTL_MS: process.env.FAKE_OLLAMA_ORPHAN_TTL_MS ?? '10000',
    ...opts.ollamaEnv,
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
  const readyP = new Promise<void>((resolve) => {
    const check = () => {
      if (output.includes('vram-based default context')) return resolve()
      if (child.exitCode !== null || child.signalCode !== null) return resolve()
      setTimeout(check, 10)
    }
    check()
  })
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
    async runners() {
      return (await (await fetch(`${url}/__fake/runners`)).json()) as {
        model: string
        pid: number
        port: number
      }[]
    },
    ready: () => readyP,
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

// The stand-in's configuration, model store and scheduler. Sources: envconfig/config.go (every OLLAMA_*
// variable), server/routes.go (default context by VRAM, modelOptions), server/sched.go (getRunner, load,
// needsReload, keep-alive timers, the pending queue) and server/images.go / manifest (the installed models).
import { spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { keepAliveFromEnv, trimEnv } from './gojson.mjs'
import { estimate, isMLX, kvView } from './memory.mjs'
import { displayShortest, fullName, parseName } from './names.mjs'

const here = dirname(fileURLToPath(import.meta.url))
const GiB = 1024 ** 3
/** sched.go ErrMaxQueue */
export const ERR_MAX_QUEUE = 'server busy, please try again.  maximum pending requests exceeded'
/** time.Duration(math.MaxInt64) from now, as a date: what a negative keep_alive means. */
const FOREVER_MS = 9223372036854.775

/** envconfig.Uint: a bad value falls back to the default (with a warning). */
function envUint(env, key, dflt, warn) {
  const s = trimEnv(env[key])
  if (s === '') return dflt
  if (!/^\d+$/.test(s)) {
    warn(`invalid environment variable, using default key=${key} value=${s} default=${dflt}`)
    return dflt
  }
  return Number(s)
}

/** envconfig.BoolWithDefault: strconv.ParseBool, and anything it cannot parse counts as true. */
function envBool(env, key) {
  const s = trimEnv(env[key])
  if (s === '') return false
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(s)) return true
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(s)) return false
  return true
}

/** "24GiB", "8G", "1.5GiB", "123456" (bytes). */
function parseBytes(s, dflt) {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(b|k|kb|kib|m|mb|mib|g|gb|gib|t|tb|tib)?\s*$/i.exec(String(s ?? ''))
  if (!m) return dflt
  const unit = (m[2] ?? 'b').toLowerCase()
  const mult = { b: 1, k: 1024, m: 1024 ** 2, g: GiB, t: 1024 ** 4 }[unit[0]]
  return Math.round(Number(m[1]) * mult)
}

export function loadConfig(env, warn = () => {}) {
  const kv = trimEnv(env.OLLAMA_KV_CACHE_TYPE).toLowerCase()
  return {
    contextLength: envUint(env, 'OLLAMA_CONTEXT_LENGTH', 0, warn),
    numParallel: Math.max(envUint(env, 'OLLAMA_NUM_PARALLEL', 1, warn), 1),
    maxQueue: envUint(env, 'OLLAMA_MAX_QUEUE', 512, warn),
    maxLoaded: envUint(env, 'OLLAMA_MAX_LOADED_MODELS', 0, warn),
    keepAliveMs: keepAliveFromEnv(env.OLLAMA_KEEP_ALIVE),
    // fs/ggml/ggml.go SupportsKVCacheType: f16, q8_0, q4_0; anything else runs as f16
    kvCacheType: ['f16', 'q8_0', 'q4_0'].includes(kv) ? kv : 'f16',
    noCloud: envBool(env, 'OLLAMA_NO_CLOUD'),
    modelsDir: trimEnv(env.OLLAMA_MODELS),
    gpuOverhead: envUint(env, 'OLLAMA_GPU_OVERHEAD', 0, warn),
    // stand-in knobs
    vramBytes: parseBytes(env.FAKE_OLLAMA_VRAM, 8 * GiB),
    tokensPerSecond: Number(env.FAKE_OLLAMA_TOKENS_PER_SEC ?? 2000) || 0,
    discoveryMs: Number(env.FAKE_OLLAMA_DISCOVERY_MS ?? 0) || 0,
    loadMs: Number(env.FAKE_OLLAMA_LOAD_MS ?? 0) || 0,
    extraModels: trimEnv(env.FAKE_OLLAMA_EXTRA_MODELS),
    registry: trimEnv(env.FAKE_OLLAMA_REGISTRY) || 'open',
    // stand-ins with the same id share one simulated GPU: a runner left by a killed server still holds memory
    gpuId: trimEnv(env.FAKE_OLLAMA_GPU_ID).replace(/[^A-Za-z0-9_-]/g, ''),
    // `model`: a thinking model thinks unless told not to, as in Ollama; `off`: only when asked (think:true)
    thinkDefault: trimEnv(env.FAKE_OLLAMA_THINK_DEFAULT) || 'model',
  }
}

/** server/routes.go Serve: the default num_ctx from the total VRAM (47/23 GiB thresholds). */
export function vramDefaultContext(totalVram) {
  if (totalVram >= 47 * GiB) return 262144
  if (totalVram >= 23 * GiB) return 32768
  return 4096
}

export function loadCatalog(dir = join(here, 'fixtures', 'models')) {
  return JSON.parse(readFileSync(join(dir, 'catalog.json'), 'utf8'))
}

function modelfileNumCtx(entry) {
  const m = /^num_ctx\s+(\d+)/m.exec(entry.show?.parameters ?? '')
  return m ? Number(m[1]) : undefined
}

/** A pulled model the catalog does not know (FAKE_OLLAMA_REGISTRY=open): a small llama, like tinyllama. */
function genericEntry(display) {
  return {
    name: display,
    generic: true,
    size: 637_700_138,
    capabilities: ['completion'],
    details: {
      parent_model: '',
      format: 'gguf',
      family: 'llama',
      families: ['llama'],
      parameter_size: '1B',
      quantization_level: 'Q4_0',
    },
    vocab: 32000,
    show: {
      model_info: {
        'general.architecture': 'llama',
        'llama.block_count': 22,
        'llama.context_length': 2048,
        'llama.embedding_length': 2048,
        'llama.feed_forward_length': 5632,
        'llama.attention.head_count': 32,
        'llama.attention.head_count_kv': 4,
        'tokenizer.ggml.tokens': null,
      },
    },
  }
}

export function createStore(config) {
  const catalog = loadCatalog()
  const byName = new Map(catalog.map((e) => [fullName(parseName(e.name)), e]))
  const models = new Map() // full name -> installed record
  const storeFile = config.modelsDir ? join(config.modelsDir, 'fake-ollama-store.json') : undefined

  const digestOf = (entry, full) =>
    entry.digest && entry.digest.length === 64
      ? entry.digest
      : createHash('sha256').update(`manifest:${full}`).digest('hex')

  function install(entry, full, modifiedAt) {
    const n = parseName(full)
    const rec = {
      ...entry,
      full,
      display: displayShortest(n),
      digest: digestOf(entry, full),
      modified_at: modifiedAt ?? entry.modified_at ?? new Date().toISOString(),
      size: entry.size ?? entry.model_bytes ?? 0,
    }
    models.set(full, rec)
    return rec
  }

  function save() {
    if (!storeFile) return
    mkdirSync(dirname(storeFile), { recursive: true })
    const out = [...models.values()].map((m) => ({
      full: m.full,
      modified_at: m.modified_at,
      ...(m.generic || m.derivedFrom ? { entry: m } : {}),
    }))
    writeFileSync(storeFile, JSON.stringify(out))
  }

  if (storeFile && existsSync(storeFile)) {
    // OLLAMA_MODELS holds what earlier runs pulled and deleted, like the real manifests folder
    for (const m of JSON.parse(readFileSync(storeFile, 'utf8'))) {
      const entry = m.entry ?? byName.get(m.full)
      if (entry) install(entry, m.full, m.modified_at)
    }
  } else {
    const extra =
      config.extraModels === 'all'
        ? catalog.filter((e) => !e.installed).map((e) => e.name)
        : config.extraModels.split(',')
    for (const e of catalog) {
      if (e.installed || extra.includes(e.name)) install(e, fullName(parseName(e.name)))
    }
    save()
  }

  return {
    catalog,
    fullNames: () => [...models.keys()],
    get: (full) => models.get(full),
    /** /api/tags order: newest first (server/model_list_cache.go sortListModelResponses). */
    list: () => [...models.values()].sort((a, b) => Date.parse(b.modified_at) - Date.parse(a.modified_at)),
    /** What the simulated registry.ollama.ai has under this name, or undefined. */
    registryEntry(full) {
      const known = byName.get(full) ?? models.get(full)
      if (known) return known
      if (config.registry === 'catalog') return undefined
      return genericEntry(displayShortest(parseName(full)))
    },
    install(entry, full) {
      const rec = install(entry, full, new Date().toISOString())
      save()
      return rec
    },
    /** /api/create FROM an installed model with PARAMETER lines. */
    derive(base, full, parameters) {
      const lines = Object.entries(parameters ?? {}).map(([k, v]) => `${k.padEnd(30)} ${JSON.stringify(v)}`)
      const entry = {
        ...base,
        derivedFrom: base.full,
        digest: undefined,
        show: { ...base.show, parameters: [base.show?.parameters, ...lines].filter(Boolean).join('\n') },
      }
      return this.install(entry, full)
    },
    remove(full) {
      const ok = models.delete(full)
      if (ok) save()
      return ok
    },
    modelfileNumCtx,
  }
}

/** Running and not a zombie (/proc/<pid>/stat state Z). */
function processAlive(pid) {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'))
  } catch {
    try {
      process.kill(pid, 0)
      return true
    } catch {
      return false
    }
  }
}

/** One loaded model: a real child process plus the scheduler's bookkeeping (sched.go runnerRef). */
class Runner {
  constructor(model, opts) {
    Object.assign(this, opts)
    this.model = model
    this.refCount = 0
    this.loading = true
    this.timer = undefined
    this.expiresAt = Date.now() + (Number.isFinite(this.sessionMs) ? this.sessionMs : FOREVER_MS)
    this.busy = 0
    this.waiting = []
  }
}

export function createScheduler({ config, store, log, runnerBin, totalVram, defaultNumCtx }) {
  const loaded = new Map() // full name -> Runner
  const pending = [] // requests waiting for a load (sched.go pendingReqCh, capacity OLLAMA_MAX_QUEUE)
  let processing = false
  const children = new Set()

  /** modelOptions + usesAutomaticNumCtx (server/routes.go) and getRunner's floors (server/sched.go). */
  function runnerOptions(model, requestOptions) {
    const fromModelfile = store.modelfileNumCtx(model)
    const fromRequest =
      typeof requestOptions?.num_ctx === 'number' ? Math.trunc(requestOptions.num_ctx) : undefined
    let numCtx = config.contextLength || defaultNumCtx
    if (fromModelfile !== undefined) numCtx = fromModelfile
    if (fromRequest !== undefined) numCtx = fromRequest
    const auto = fromRequest === undefined && fromModelfile === undefined && config.contextLength === 0
    numCtx = Math.max(numCtx, 4)
    if (model.capabilities?.includes('vision')) numCtx = Math.max(numCtx, 2048)
    const numBatch = typeof requestOptions?.num_batch === 'number' ? requestOptions.num_batch : 512
    const numGpu = typeof requestOptions?.num_gpu === 'number' ? requestOptions.num_gpu : -1
    return { numCtx, auto, numBatch, numGpu }
  }

  function trainContext(model) {
    return kvView(model).contextLength
  }

  /** sched.go effectiveContext: capped at the trained context. */
  function effective(numCtx, model) {
    const train = trainContext(model)
    return train > 0 && numCtx > train ? train : numCtx
  }

  /** sched.go load: embedding models and some architectures run with one sequence. */
  function parallelFor(model) {
    if (!model.capabilities?.includes('completion')) return 1
    const family = model.details?.family
    if (
      [
        'mllama',
        'qwen3vl',
        'qwen3vlmoe',
        'qwen35',
        'qwen35moe',
        'qwen3next',
        'lfm2',
        'lfm2moe',
        'nemotron_h',
      ].includes(family)
    )
      return 1
    return config.numParallel
  }

  /** runnerRef.needsReload */
  function needsReload(runner, opts, model) {
    // sched.go needsReload compares the options only for runners that are not MLX: an MLX model keeps the
    // runner (and the context it was loaded with) whatever num_ctx a later request asks for
    if (isMLX(model)) return Boolean(runner.dead)
    const existing = runner.opts
    let numCtx = effective(opts.numCtx, model)
    if (existing.auto && opts.auto) numCtx = existing.numCtx
    return (
      numCtx !== existing.numCtx ||
      existing.numBatch !== opts.numBatch ||
      (opts.numGpu >= 0 && opts.numGpu !== existing.numGpu) ||
      runner.dead
    )
  }

  const gpuDir = config.gpuId ? join(tmpdir(), `fake-ollama-gpu-${config.gpuId}`) : undefined

  /** Memory held on the shared simulated GPU by runners this server does not own (orphans of a killed one). */
  function foreignVram() {
    if (!gpuDir || !existsSync(gpuDir)) return 0
    const own = new Set([...loaded.values()].map((r) => r.child?.pid))
    let n = 0
    for (const f of readdirSync(gpuDir)) {
      const pid = Number.parseInt(f, 10)
      if (own.has(pid) || !processAlive(pid)) continue
      try {
        n += JSON.parse(readFileSync(join(gpuDir, f), 'utf8')).vram ?? 0
      } catch {}
    }
    return n
  }

  function usedVram(except) {
    let n = foreignVram()
    for (const r of loaded.values()) if (r !== except) n += r.sizeVram
    return n
  }

  function spawnRunner(model, runnerOpts) {
    return new Promise((resolve, reject) => {
      const child = spawn(
        process.execPath,
        [
          runnerBin,
          '--model',
          model.full,
          '--ctx-size',
          String(runnerOpts.numCtx * runnerOpts.numParallel),
          '--parallel',
          String(runnerOpts.numParallel),
          ...(gpuDir ? ['--gpu-dir', gpuDir] : []),
        ],
        { stdio: ['ignore', 'pipe', 'ignore'], env: process.env },
      )
      children.add(child)
      child.on('exit', () => children.delete(child))
      let out = ''
      child.stdout.setEncoding('utf8').on('data', (s) => {
        out += s
        const m = /runner listening on (\d+)/.exec(out)
        if (m) {
          child.stdout.removeAllListeners('data')
          child.stdout.resume()
          resolve({ child, port: Number(m[1]) })
        }
      })
      child.once('error', reject)
      child.once('exit', (code) =>
        reject(new Error(`llama runner process has terminated: exit status ${code}`)),
      )
    })
  }

  async function load(model, opts, sessionMs) {
    const numParallel = parallelFor(model)
    const numCtx = effective(opts.numCtx, model)
    const mem = estimate(model, {
      numCtx,
      numParallel,
      kvCacheType: config.kvCacheType,
      batch: opts.numBatch,
    })
    // unload runners until it fits, or until OLLAMA_MAX_LOADED_MODELS allows; unset, sched.go allows
    // defaultModelsPerGPU (3) per GPU, and the stand-in has one
    const maxLoaded = config.maxLoaded || 3
    for (;;) {
      const free = totalVram - config.gpuOverhead - usedVram()
      if (loaded.size < maxLoaded && (mem.total <= free || loaded.size === 0)) break
      const victim = runnerToUnload()
      if (!victim) break
      if (victim.refCount > 0) {
        // sched.go processPending: the chosen runner expires (sessionDuration 0) once its requests end, and the
        // load waits for it to be unloaded instead of loading over the VRAM it holds
        victim.sessionMs = 0
        while (victim.refCount > 0) await new Promise((r) => setTimeout(r, 10))
      }
      unload(victim)
    }
    const free = Math.max(0, totalVram - config.gpuOverhead - usedVram())
    const runner = new Runner(model, {
      opts: { ...opts, numCtx },
      numParallel,
      sessionMs,
      sizeTotal: model.size,
      sizeVram: Math.min(model.size, free),
      // x/mlxrunner/client.go ContextLength: 0 until the runner has answered its first /v1/status
      contextLength: isMLX(model) ? 0 : numCtx,
      memory: mem,
    })
    loaded.set(model.full, runner)
    log(
      'INFO',
      `loading model model=${model.display} num_ctx=${numCtx} parallel=${numParallel} kv_cache_type=${config.kvCacheType}`,
    )
    try {
      const { child, port } = await spawnRunner(model, { numCtx, numParallel })
      runner.child = child
      runner.port = port
      child.once('exit', () => {
        runner.dead = true
      })
      if (config.loadMs > 0) await new Promise((r) => setTimeout(r, config.loadMs))
    } catch (err) {
      loaded.delete(model.full)
      throw err
    }
    // now llama-server has logged its buffers: the size is the estimate (llm/llama_server.go MemorySize)
    runner.sizeTotal = mem.total
    runner.sizeVram = Math.min(mem.total, free)
    if (gpuDir) {
      mkdirSync(gpuDir, { recursive: true })
      writeFileSync(
        join(gpuDir, `${runner.child.pid}.json`),
        JSON.stringify({ vram: runner.sizeVram, model: model.display }),
      )
    }
    // x/mlxrunner/client.go reportedContextLength: the requested num_ctx (the client's soft limit) when it is
    // below the model's MaxContextLength (x/models/*: max_position_embeddings), else that maximum
    runner.contextLength = isMLX(model) ? Math.min(numCtx, trainContext(model) || numCtx) : numCtx
    runner.loading = false
    log('INFO', `llama runner started pid=${runner.child.pid} size=${mem.total} size_vram=${runner.sizeVram}`)
    return runner
  }

  /**
   * sched.go findRunnerToUnload: sorted by ByDurationAndName (session duration as uint64, so a negative
   * "forever" sorts last; then the model path, a blob named by its digest), the first idle runner, else the
   * first one (the caller waits for it to go idle).
   */
  function runnerToUnload() {
    const key = (r) =>
      Number.isFinite(r.sessionMs) && r.sessionMs >= 0 ? r.sessionMs : Number.POSITIVE_INFINITY
    const path = (r) => `sha256-${String(r.model.digest ?? r.model.full).replace(/^sha256:/, '')}`
    const list = [...loaded.values()]
      .filter((r) => !r.loading)
      .sort((a, b) => key(a) - key(b) || (path(a) < path(b) ? -1 : path(a) > path(b) ? 1 : 0))
    return list.find((r) => r.refCount === 0) ?? list[0]
  }

  function unload(runner) {
    clearTimeout(runner.timer)
    if (loaded.get(runner.model.full) === runner) loaded.delete(runner.model.full)
    runner.child?.kill('SIGTERM')
  }

  function armTimer(runner) {
    clearTimeout(runner.timer)
    if (runner.sessionMs <= 0) return unload(runner)
    runner.expiresAt = Date.now() + (Number.isFinite(runner.sessionMs) ? runner.sessionMs : FOREVER_MS)
    if (Number.isFinite(runner.sessionMs))
      runner.timer = setTimeout(() => runner.refCount <= 0 && unload(runner), runner.sessionMs)
  }

  async function processPending() {
    if (processing) return
    processing = true
    try {
      while (pending.length > 0) {
        const req = pending.shift()
        // sched.go: a request whose context ended while queued gets context.Canceled, which
        // routes.go handleScheduleError answers as 499 "request canceled"
        if (req.signal?.aborted) {
          req.reject(Object.assign(new Error('request canceled'), { status: 499 }))
          continue
        }
        try {
          const current = loaded.get(req.model.full)
          if (current && !needsReload(current, req.opts, req.model)) {
            req.resolve(current)
            continue
          }
          if (current) {
            // wait for its requests to finish, then reload with the new options
            while (current.refCount > 0) await new Promise((r) => setTimeout(r, 10))
            unload(current)
          }
          req.resolve(await load(req.model, req.opts, req.sessionMs))
        } catch (err) {
          req.reject(err)
        }
      }
    } finally {
      processing = false
    }
  }

  return {
    runnerOptions,
    /**
     * sched.go getRunner: a usable loaded runner at once, else a place in the pending queue (full: 503).
     * Resolves to a lease; call lease.done() when the request ends.
     */
    async acquire(model, requestOptions, keepAliveMs, signal) {
      const opts = runnerOptions(model, requestOptions)
      const sessionMs = keepAliveMs ?? config.keepAliveMs
      let runner = loaded.get(model.full)
      if (!runner || runner.loading || needsReload(runner, opts, model)) {
        if (pending.length >= config.maxQueue) throw Object.assign(new Error(ERR_MAX_QUEUE), { status: 503 })
        runner = await new Promise((resolve, reject) => {
          pending.push({ model, opts, sessionMs, signal, resolve, reject })
          processPending()
        })
      }
      runner.refCount++
      clearTimeout(runner.timer)
      runner.sessionMs = sessionMs
      runner.expiresAt = Date.now() + (Number.isFinite(sessionMs) ? sessionMs : FOREVER_MS)
      // llama-server runs -np sequences at once; further requests wait for a free slot
      // (a released slot is handed straight to the next waiter)
      if (runner.busy >= runner.numParallel) await new Promise((r) => runner.waiting.push(r))
      else runner.busy++
      let released = false
      return {
        runner,
        done() {
          if (released) return
          released = true
          const next = runner.waiting.shift()
          if (next) next()
          else runner.busy--
          runner.refCount--
          if (runner.refCount <= 0) armTimer(runner)
        },
      }
    },
    /** keep_alive 0 with no prompt: sched.go expireRunner */
    expire(model) {
      const r = loaded.get(model.full)
      if (!r) return
      r.sessionMs = 0
      if (r.refCount <= 0) unload(r)
    },
    /**
     * PsHandler over sched.go loadedModels: every runner in s.loaded (one past its expiry is listed until it
     * is unloaded), the latest expires_at first, compared in whole seconds (SortStableFunc on Unix())
     */
    running() {
      return [...loaded.values()].sort(
        (a, b) => Math.floor(b.expiresAt / 1000) - Math.floor(a.expiresAt / 1000),
      )
    },
    runners: () =>
      [...loaded.values()].map((r) => ({ model: r.model.display, pid: r.child?.pid, port: r.port })),
    /** Ctrl+C / SIGTERM: sched.unloadAllRunners */
    unloadAll() {
      for (const r of loaded.values()) unload(r)
      for (const c of children) c.kill('SIGTERM')
    },
  }
}

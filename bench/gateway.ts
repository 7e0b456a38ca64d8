// `pnpm bench gateway`: what the gateway adds over talking to the upstream directly, in one run.
// The upstream mock and the load generator live in this process; the gateway runs in its own process
// (bench/_gateway-server.mjs) from the built packages (run `pnpm build` first) with a real hub, so chunk timestamps from the mock and arrival times at the
// client come from the same clock. Prints a table; writes bench/results/gateway.json.
import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { Agent, createServer, type IncomingMessage, request, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { cpus, loadavg, tmpdir, totalmem } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'

const root = new URL('..', import.meta.url).pathname
const fixtures = join(root, 'packages/core/testing-assets/fake-ollama/fixtures')
const TAGS = readFileSync(join(fixtures, 'api-tags-16-models-local.json'), 'utf8')
const SHOW = readFileSync(join(fixtures, 'api-show-dolphin3-8b-local-windows.json'), 'utf8')
const MODEL = 'qwen3:1.7b'
const quick = process.env.BENCH_QUICK === '1'
// BENCH_SMOKE=1: tiny counts, to prove the bench runs (its figures mean nothing).
const smoke = process.env.BENCH_SMOKE === '1'
const count = (full: number, small: number) => (smoke ? small : full)

// ---- the upstream mock -------------------------------------------------------------------------------
type BenchSpec = {
  mode: 'json' | 'ttfb' | 'chunks' | 'hold' | 'abort'
  chunks?: number
  intervalMs?: number
  id?: number
}
const upstreamClosedAt = new Map<number, number>()
const FINAL = JSON.stringify({
  model: MODEL,
  created_at: '2025-01-01T00:00:00Z',
  message: { role: 'assistant', content: '' },
  done: true,
  done_reason: 'stop',
  prompt_eval_count: 12,
  eval_count: 34,
})

// The spec rides in the message text: the gateway forwards only the fields Ollama's ChatRequest declares.
function serveChat(req: IncomingMessage, res: ServerResponse, body: string): void {
  const spec = JSON.parse(
    (JSON.parse(body) as { messages: { content: string }[] }).messages[0]!.content,
  ) as BenchSpec
  if (spec.mode === 'json') {
    res.writeHead(200, { 'content-type': 'application/json; charset=utf-8' }).end(FINAL)
    return
  }
  res.writeHead(200, { 'content-type': 'application/x-ndjson' })
  const line = (i: number) =>
    `${JSON.stringify({ model: MODEL, message: { content: 'tok' }, done: false, i, t: performance.now() })}\n`
  if (spec.mode === 'ttfb') {
    res.write(line(0))
    res.end(`${FINAL}\n`)
    return
  }
  let i = 0
  const every = spec.mode === 'hold' ? 1000 : spec.mode === 'abort' ? 5 : (spec.intervalMs ?? 10)
  res.write(line(i++))
  const timer = setInterval(() => {
    if (spec.mode === 'chunks' && i >= (spec.chunks ?? 100)) {
      clearInterval(timer)
      res.end(`${FINAL}\n`)
      return
    }
    res.write(line(i++))
  }, every)
  res.on('close', () => {
    clearInterval(timer)
    if (spec.id !== undefined) upstreamClosedAt.set(spec.id, performance.now())
  })
  req.on('error', () => {})
}

const upstream = createServer((req, res) => {
  const parts: Buffer[] = []
  req.on('data', (c: Buffer) => parts.push(c))
  req.on('end', () => {
    if (req.url === '/api/tags')
      return void res.writeHead(200, { 'content-type': 'application/json' }).end(TAGS)
    if (req.url === '/api/ps')
      return void res.writeHead(200, { 'content-type': 'application/json' }).end('{"models":[]}')
    if (req.url === '/api/show')
      return void res.writeHead(200, { 'content-type': 'application/json' }).end(SHOW)
    if (req.url === '/api/chat') return serveChat(req, res, Buffer.concat(parts).toString())
    res.writeHead(404).end('404 page not found')
  })
})
upstream.listen(0, '127.0.0.1')
await once(upstream, 'listening')
const upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`

// ---- the gateway, in its own process -----------------------------------------------------------------
for (const built of ['packages/core/dist/index.js', 'packages/server-express/dist/index.js']) {
  if (!existsSync(join(root, built))) throw new Error(`${built} is missing: run \`pnpm build\` first`)
}
const child: ChildProcess = spawn(
  process.execPath,
  [
    ...(process.env.BENCH_PROF ? ['--cpu-prof', '--cpu-prof-dir=/tmp/prof'] : []),
    join(root, 'bench/_gateway-server.mjs'),
  ],
  { env: { ...process.env, BENCH_UPSTREAM: upstreamUrl }, stdio: ['ignore', 'pipe', 'inherit'] },
)
const ready = (await new Promise((resolve, reject) => {
  createInterface({ input: child.stdout! }).once('line', (l) => resolve(JSON.parse(l)))
  child.once('exit', (code) => reject(new Error(`gateway process exited (${code}) before it listened`)))
})) as { url: string; key: string }

// ---- the load generator --------------------------------------------------------------------------------
const directAgent = new Agent({ keepAlive: true, maxSockets: Number.POSITIVE_INFINITY })
const gatewayAgent = new Agent({ keepAlive: true, maxSockets: Number.POSITIVE_INFINITY })
type Via = 'direct' | 'gateway'

interface Exchange {
  status: number
  firstChunkMs: number
  totalMs: number
  chunks: number
  lines: string[]
  /** Arrival time minus the mock's send time, per line that carries `t`. */
  lineLatency: number[]
}

function chat(
  via: Via,
  spec: BenchSpec,
  opts: { onFirstChunk?: (abort: () => void) => void } = {},
): Promise<Exchange> {
  const body = JSON.stringify({
    model: MODEL,
    messages: [{ role: 'user', content: JSON.stringify(spec) }],
    stream: spec.mode !== 'json',
  })
  const url = via === 'direct' ? `${upstreamUrl}/api/chat` : `${ready.url}/ollama/api/chat`
  const headers: Record<string, string | number> = {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
  }
  if (via === 'gateway') headers.authorization = `Bearer ${ready.key}`
  const started = performance.now()
  return new Promise((resolve, reject) => {
    const ex: Exchange = { status: 0, firstChunkMs: -1, totalMs: 0, chunks: 0, lines: [], lineLatency: [] }
    let pending = ''
    const req = request(url, {
      method: 'POST',
      headers,
      agent: via === 'direct' ? directAgent : gatewayAgent,
    })
    req.on('response', (res) => {
      ex.status = res.statusCode ?? 0
      res.on('data', (c: Buffer) => {
        const now = performance.now()
        if (ex.chunks++ === 0) {
          ex.firstChunkMs = now - started
          opts.onFirstChunk?.(() => req.destroy())
        }
        pending += c.toString()
        let nl = pending.indexOf('\n')
        while (nl !== -1) {
          const l = pending.slice(0, nl)
          pending = pending.slice(nl + 1)
          ex.lines.push(l)
          const m = /"t":([0-9.]+)/.exec(l)
          if (m) ex.lineLatency.push(now - Number(m[1]))
          nl = pending.indexOf('\n')
        }
      })
      res.on('end', () => {
        ex.totalMs = performance.now() - started
        if (pending) ex.lines.push(pending)
        resolve(ex)
      })
      res.on('error', () => resolve(ex))
    })
    req.on('error', (err) => (ex.chunks > 0 ? resolve(ex) : reject(err)))
    req.end(body)
  })
}

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? Number.NaN
}
const r3 = (x: number) => Math.round(x * 1000) / 1000
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

function rssMb(pid: number): { rss: number; hwm: number } {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8')
  const kb = (k: string) => Number(new RegExp(`${k}:\\s+(\\d+)`).exec(s)?.[1] ?? Number.NaN)
  return { rss: Math.round(kb('VmRSS') / 1024), hwm: Math.round(kb('VmHWM') / 1024) }
}

// 1. Non-streaming latency, direct and through the gateway interleaved (same conditions for both).
async function latency(n: number) {
  const d: number[] = []
  const g: number[] = []
  for (let i = 0; i < count(300, 10); i++) {
    await chat('direct', { mode: 'json' })
    await chat('gateway', { mode: 'json' })
  }
  for (let i = 0; i < n; i++) {
    d.push((await chat('direct', { mode: 'json' })).totalMs)
    const ex = await chat('gateway', { mode: 'json' })
    if (ex.status !== 200)
      throw new Error(`gateway answered ${ex.status}: ${ex.lines.join('').slice(0, 300)}`)
    g.push(ex.totalMs)
  }
  return { direct: { p50: pct(d, 50), p95: pct(d, 95) }, gateway: { p50: pct(g, 50), p95: pct(g, 95) } }
}

// 2. Time to first chunk of a streamed chat.
async function ttfb(n: number) {
  const d: number[] = []
  const g: number[] = []
  for (let i = 0; i < n; i++) {
    d.push((await chat('direct', { mode: 'ttfb' })).firstChunkMs)
    g.push((await chat('gateway', { mode: 'ttfb' })).firstChunkMs)
  }
  return { direct: { p50: pct(d, 50), p95: pct(d, 95) }, gateway: { p50: pct(g, 50), p95: pct(g, 95) } }
}

// 3. Per-chunk latency: 16 streams at 100 chunks/s each, every line stamped by the mock when written.
async function perChunk(via: Via, streams: number, chunks: number) {
  const all = await Promise.all(
    Array.from({ length: streams }, () => chat(via, { mode: 'chunks', chunks, intervalMs: 10 })),
  )
  const lat = all.flatMap((e) => e.lineLatency)
  const linesIn = streams * (chunks + 1) // content lines + the final line
  const linesOut = all.reduce((n, e) => n + e.lines.length, 0)
  const readsOut = all.reduce((n, e) => n + e.chunks, 0)
  return { p50: pct(lat, 50), p95: pct(lat, 95), linesIn, linesOut, readsOut }
}

// 4. RSS of the gateway process while 1,000 streams are open through it.
async function heldStreams(n: number) {
  const before = rssMb(child.pid!)
  const aborts: (() => void)[] = []
  let opened = 0
  const all = Array.from({ length: n }, () =>
    chat(
      'gateway',
      { mode: 'hold' },
      {
        onFirstChunk: (abort) => {
          opened++
          aborts.push(abort)
        },
      },
    ).catch(() => undefined),
  )
  const deadline = performance.now() + 60_000
  while (opened < n && performance.now() < deadline) await sleep(50)
  await sleep(1500) // a couple of keep-alive chunks on every stream
  const during = rssMb(child.pid!)
  for (const abort of aborts) abort()
  await Promise.all(all)
  return { streams: opened, idleRssMb: before.rss, rssMb: during.rss, peakRssMb: during.hwm }
}

// 5. Client abort to upstream close.
async function abortToClose(via: Via, n: number) {
  const deltas: number[] = []
  for (let id = via === 'direct' ? 0 : 100_000, end = id + n; id < end; id++) {
    let abortedAt = 0
    await chat(
      via,
      { mode: 'abort', id },
      {
        onFirstChunk: (abort) => {
          abortedAt = performance.now()
          abort()
        },
      },
    )
    const deadline = performance.now() + 2000
    while (!upstreamClosedAt.has(id) && performance.now() < deadline) await sleep(1)
    deltas.push((upstreamClosedAt.get(id) ?? Number.POSITIVE_INFINITY) - abortedAt)
  }
  return { p50: pct(deltas, 50), p95: pct(deltas, 95), max: Math.max(...deltas) }
}

// 6. Recording usage on the request path: the batch recorder (what the gateway does now: an append to
// memory, written off the path at least every second) against round one's per-row insert, on a real
// SQLite file, in this process. better-sqlite3 writes synchronously, so the per-row insert blocked the
// event loop of every request even when its promise was not awaited.
async function usageRecording(n: number) {
  const core = (await import(
    join(root, 'packages/core/dist/index.js')
  )) as typeof import('../packages/core/dist/index.js')
  const dir = mkdtempSync(join(tmpdir(), 'sllm-bench-usage-'))
  const hub = core.createHub({
    dataDir: dir,
    logger: core.silentLogger,
    capacityMb: () => 65536,
    providers: false,
    discovery: false,
    ollama: false,
  })
  await hub.start()
  try {
    const joined = await hub.access.join({ name: 'bench-usage' }, '127.0.0.1')
    await hub.devices.approve(joined.device_id, 'role-user')
    const rec = (i: number) => ({
      device_id: joined.device_id,
      model: MODEL,
      endpoint: '/api/chat',
      prompt_tokens: 12 + (i % 7),
      completion_tokens: 34,
      duration_ms: 20,
      status: 200,
    })
    // Round one's way, as the baseline: one awaited INSERT of the usage row per request, on the request path
    // (what GatewayPolicy.recordUsage did before the batch recorder replaced it).
    const insertRow = (i: number) => hub.db('usage').insert({ ...rec(i), at: Date.now() })
    for (let i = 0; i < 50; i++) await insertRow(i) // warm-up
    const perRow: number[] = []
    for (let i = 0; i < n; i++) {
      const t = performance.now()
      await insertRow(i)
      perRow.push((performance.now() - t) * 1000)
    }
    await hub.recorder.flush()
    const batched: number[] = []
    for (let i = 0; i < n; i++) {
      const t = performance.now()
      hub.recorder.record(rec(i))
      batched.push((performance.now() - t) * 1000)
    }
    // What the recorder later writes off the request path, per row.
    const t = performance.now()
    await hub.recorder.flush()
    const flushPerRowUs = ((performance.now() - t) * 1000) / n
    return {
      requests: n,
      perRowInsertUs: { p50: pct(perRow, 50), p95: pct(perRow, 95) },
      batchedUs: { p50: pct(batched, 50), p95: pct(batched, 95) },
      flushPerRowUs,
    }
  } finally {
    await hub.stop()
    rmSync(dir, { recursive: true, force: true })
  }
}

try {
  // Memory first, after a short warm-up, so the figure is the streams' and not leftovers of the load phases.
  for (let i = 0; i < count(200, 10); i++) await chat('gateway', { mode: 'json' })
  const held = await heldStreams(count(1000, 20))
  const lat = await latency(count(quick ? 300 : 2000, 30))
  const first = await ttfb(count(quick ? 200 : 1000, 20))
  const chunkDirect = await perChunk('direct', count(16, 2), count(quick ? 100 : 300, 10))
  const chunkGateway = await perChunk('gateway', count(16, 2), count(quick ? 100 : 300, 10))
  const abortDirect = await abortToClose('direct', count(quick ? 10 : 30, 3))
  const abortGateway = await abortToClose('gateway', count(quick ? 10 : 30, 3))
  const usage = await usageRecording(count(quick ? 1000 : 5000, 100))

  const rows = [
    {
      metric: 'non-streaming latency p50 (ms)',
      direct: lat.direct.p50,
      gateway: lat.gateway.p50,
      added: lat.gateway.p50 - lat.direct.p50,
      target: '≤ +0.5',
      ok: lat.gateway.p50 - lat.direct.p50 <= 0.5,
    },
    {
      metric: 'non-streaming latency p95 (ms)',
      direct: lat.direct.p95,
      gateway: lat.gateway.p95,
      added: lat.gateway.p95 - lat.direct.p95,
      target: '≤ +1.0',
      ok: lat.gateway.p95 - lat.direct.p95 <= 1,
    },
    {
      metric: 'time to first chunk p50 (ms)',
      direct: first.direct.p50,
      gateway: first.gateway.p50,
      added: first.gateway.p50 - first.direct.p50,
      target: '≤ +0.7',
      ok: first.gateway.p50 - first.direct.p50 <= 0.7,
    },
    {
      metric: 'time to first chunk p95 (ms)',
      direct: first.direct.p95,
      gateway: first.gateway.p95,
      added: first.gateway.p95 - first.direct.p95,
      target: '',
      ok: true,
    },
    {
      metric: 'per-chunk latency p50, 16 streams × 100/s (ms)',
      direct: chunkDirect.p50,
      gateway: chunkGateway.p50,
      added: chunkGateway.p50 - chunkDirect.p50,
      target: '≤ +0.15',
      ok: chunkGateway.p50 - chunkDirect.p50 <= 0.15,
    },
    {
      metric: 'per-chunk latency p95 (ms)',
      direct: chunkDirect.p95,
      gateway: chunkGateway.p95,
      added: chunkGateway.p95 - chunkDirect.p95,
      target: '',
      ok: true,
    },
    {
      metric: 'chunks in = chunks out (lines)',
      direct: chunkDirect.linesOut,
      gateway: chunkGateway.linesOut,
      added: chunkGateway.linesOut - chunkGateway.linesIn,
      target: '= 0',
      ok: chunkGateway.linesOut === chunkGateway.linesIn && chunkGateway.readsOut === chunkGateway.linesIn,
    },
    {
      metric: `gateway RSS with ${held.streams} open streams (MB)`,
      direct: held.idleRssMb,
      gateway: held.rssMb,
      added: held.rssMb - held.idleRssMb,
      target: '≤ 160 total',
      ok: held.rssMb <= 160 && held.streams === count(1000, 20),
    },
    {
      // "direct" here is round one's per-row insert, "through gateway" the batch recorder the gateway uses.
      metric: 'recording usage on the request path p50 (µs): per-row insert → batched',
      direct: usage.perRowInsertUs.p50,
      gateway: usage.batchedUs.p50,
      added: usage.batchedUs.p50 - usage.perRowInsertUs.p50,
      target: 'batched < per-row',
      ok: usage.batchedUs.p50 < usage.perRowInsertUs.p50,
    },
    {
      metric: 'recording usage p95 (µs): per-row insert → batched',
      direct: usage.perRowInsertUs.p95,
      gateway: usage.batchedUs.p95,
      added: usage.batchedUs.p95 - usage.perRowInsertUs.p95,
      target: '',
      ok: true,
    },
    {
      metric: 'client abort → upstream close p95 (ms)',
      direct: abortDirect.p95,
      gateway: abortGateway.p95,
      added: abortGateway.p95 - abortDirect.p95,
      target: '≤ 100',
      ok: abortGateway.max <= 100,
    },
  ]
  const table = [
    '| metric | direct | through gateway | gateway adds | target | ok |',
    '|---|---:|---:|---:|---|---|',
    ...rows.map(
      (r) =>
        `| ${r.metric} | ${r3(r.direct)} | ${r3(r.gateway)} | ${r.added >= 0 ? '+' : ''}${r3(r.added)} | ${r.target} | ${r.ok ? 'yes' : 'NO'} |`,
    ),
  ].join('\n')
  console.log(table)
  console.log(
    `\nRSS column "direct" is the gateway process idle; chunk reads through the gateway: ${chunkGateway.readsOut} for ${chunkGateway.linesIn} lines written. Abort max ${r3(abortGateway.max)} ms. Usage rows the recorder writes later: ${r3(usage.flushPerRowUs)} µs each, off the request path.`,
  )
  const result = {
    bench: 'gateway',
    at: new Date().toISOString(),
    machine: {
      // Other work on the machine shows in every latency figure: read them with this in mind.
      loadavg: loadavg().map((x) => Math.round(x * 100) / 100),
      cpus: cpus().length,
      cpu: cpus()[0]?.model,
      memMb: Math.round(totalmem() / 2 ** 20),
      node: process.version,
    },
    quick,
    nonStreaming: lat,
    timeToFirstChunk: first,
    perChunk: { streams: 16, chunksPerSecond: 100, direct: chunkDirect, gateway: chunkGateway },
    heldStreams: held,
    abortToUpstreamClose: { direct: abortDirect, gateway: abortGateway },
    usageRecording: usage,
    rows,
    ok: rows.every((r) => r.ok),
  }
  mkdirSync(join(root, 'bench/results'), { recursive: true })
  // A smoke run proves the bench works; it never replaces the recorded figures.
  const out = smoke ? 'bench/results/gateway.smoke.tmp' : 'bench/results/gateway.json'
  writeFileSync(join(root, out), `${JSON.stringify({ ...result, smoke }, null, 2)}\n`)
  console.log(`\nwrote ${out} (${result.ok ? 'all targets met' : 'some targets missed'})`)
} finally {
  child.kill('SIGTERM')
  await once(child, 'exit').catch(() => {})
  directAgent.destroy()
  gatewayAgent.destroy()
  upstream.closeAllConnections()
  upstream.close()
}

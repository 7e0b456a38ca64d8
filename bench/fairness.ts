// `pnpm bench fairness`: does the fair-share queue keep a flooding guest from delaying everyone else, and
// what does it cost in throughput? Two variants in one run, on the same stand-in Ollama (OLLAMA_NUM_PARALLEL=1,
// a fixed number of tokens per second per answer):
//   fifo:    requests straight to the stand-in, which queues them first in, first out as Ollama does
//            (server/sched.go: one runner semaphore per model, the rest wait in pendingReqCh);
//   gateway: the same load through the gateway (its own process, from dist/), whose VTC queue releases one
//            request at a time.
// Load: a guest keeps 20 requests of 200 output tokens in flight; a user sends a 50-token request every 2 s.
// Reported: the user's wait (request to first token) p50/p95 and total tokens/s in each; targets: the user's
// p95 through the gateway ≤ 1.5 × one guest request's service time, and throughput ≥ 0.95 × FIFO's.
// Knobs: BENCH_FAIRNESS_DURATION_S (default 60), BENCH_FAIRNESS_TOKENS_PER_S (default 100). A run shorter
// than the default is a smoke run and writes bench/results/fairness.smoke.tmp, never the recorded figures.
import { type ChildProcess, spawn } from 'node:child_process'
import { once, setMaxListeners } from 'node:events'
import { existsSync, mkdirSync, writeFileSync } from 'node:fs'
import { Agent, request } from 'node:http'
import { cpus, loadavg } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'

const root = new URL('..', import.meta.url).pathname
for (const built of [
  'packages/core/dist/index.js',
  'packages/core/dist/testing/index.js',
  'packages/server-express/dist/index.js',
]) {
  if (!existsSync(join(root, built))) throw new Error(`${built} is missing: run \`pnpm build\` first`)
}
const { startFakeOllama } = (await import(
  join(root, 'packages/core/dist/testing/index.js')
)) as typeof import('../packages/core/dist/testing/index.js')

const DURATION_S = Number(process.env.BENCH_FAIRNESS_DURATION_S ?? 60)
const TOKENS_PER_S = Number(process.env.BENCH_FAIRNESS_TOKENS_PER_S ?? 100)
if (!(DURATION_S > 0) || !(TOKENS_PER_S > 0)) throw new Error('duration and tokens/s must be positive')
const smoke = DURATION_S < 60
const GUEST_IN_FLIGHT = 20
const GUEST_TOKENS = 200
const USER_TOKENS = 50
const USER_EVERY_MS = 2000
const MODEL = 'qwen3:1.7b'

// The stand-in echoes the last user message word by word ("Echo:" + one word per chunk), pacing chunks
// FAKE_OLLAMA_CHUNK_DELAY_MS apart: a prompt of n - 1 words is an answer of n tokens. num_predict says the
// same to a stand-in (or an Ollama) that honours it.
const words = (n: number) => Array.from({ length: n - 1 }, (_, i) => `w${i % 10}`).join(' ')
const body = (tokens: number) =>
  JSON.stringify({
    model: MODEL,
    messages: [{ role: 'user', content: words(tokens) }],
    stream: true,
    options: { num_predict: tokens },
  })
const GUEST_BODY = body(GUEST_TOKENS)
const USER_BODY = body(USER_TOKENS)

// The stand-in paces generation with FAKE_OLLAMA_TOKENS_PER_SEC and runs OLLAMA_NUM_PARALLEL answers per
// model at once, queueing the rest (its runner semaphore, as llm/llama_server.go's). An older stand-in
// without them (no /__fake/config) is paced with FAKE_OLLAMA_CHUNK_DELAY_MS instead; it runs every request
// at once, which the check below reports.
let fake = await startFakeOllama({
  record: false,
  env: { OLLAMA_NUM_PARALLEL: '1', FAKE_OLLAMA_TOKENS_PER_SEC: String(TOKENS_PER_S) },
})
if ((await fetch(`${fake.url}/__fake/config`)).status === 404) {
  await fake.stop()
  fake = await startFakeOllama({
    chunkDelayMs: 1000 / TOKENS_PER_S,
    record: false,
    env: { OLLAMA_NUM_PARALLEL: '1' },
  })
}
const child: ChildProcess = spawn(process.execPath, [join(root, 'bench/_fairness-server.mjs')], {
  env: { ...process.env, BENCH_UPSTREAM: fake.url },
  stdio: ['ignore', 'pipe', 'inherit'],
})
const gw = (await new Promise((resolve, reject) => {
  createInterface({ input: child.stdout! }).once('line', (l) => resolve(JSON.parse(l)))
  child.once('exit', (code) => reject(new Error(`gateway process exited (${code}) before it listened`)))
})) as { url: string; guestKey: string; userKey: string }

interface Target {
  name: 'fifo' | 'gateway'
  url: string
  guestKey?: string
  userKey?: string
}

interface Done {
  status: number
  askedAt: number
  firstTokenAt: number
  endAt: number
  /** Content chunks and when each came (for tokens inside the window). */
  tokenTimes: number[]
  error?: string
}

const agent = new Agent({ keepAlive: true, maxSockets: Number.POSITIVE_INFINITY })

function chat(url: string, key: string | undefined, payload: string, signal: AbortSignal): Promise<Done> {
  const askedAt = performance.now()
  return new Promise((resolve) => {
    const d: Done = { status: 0, askedAt, firstTokenAt: -1, endAt: -1, tokenTimes: [] }
    let pending = ''
    const req = request(url, {
      method: 'POST',
      agent,
      signal,
      headers: {
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(payload),
        ...(key ? { authorization: `Bearer ${key}` } : {}),
      },
    })
    req.on('response', (res) => {
      d.status = res.statusCode ?? 0
      res.setEncoding('utf8')
      res.on('data', (c: string) => {
        pending += c
        let nl = pending.indexOf('\n')
        while (nl !== -1) {
          const line = pending.slice(0, nl)
          pending = pending.slice(nl + 1)
          if (line.includes('"done":false')) {
            const now = performance.now()
            if (d.firstTokenAt < 0) d.firstTokenAt = now
            d.tokenTimes.push(now)
          } else if (line.includes('"error"')) d.error = line.slice(0, 200)
          nl = pending.indexOf('\n')
        }
      })
      res.on('end', () => {
        d.endAt = performance.now()
        resolve(d)
      })
      res.on('error', (err) => {
        d.error ??= String(err)
        resolve(d)
      })
    })
    req.on('error', (err) => {
      d.error ??= String(err)
      resolve(d)
    })
    req.end(payload)
  })
}

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? Number.NaN
}
const r2 = (x: number) => Math.round(x * 100) / 100
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

async function variant(t: Target) {
  const path = t.name === 'fifo' ? '/api/chat' : '/ollama/api/chat'
  const url = `${t.url}${path}`
  const stopGuests = new AbortController()
  setMaxListeners(4 * GUEST_IN_FLIGHT, stopGuests.signal)
  const guestDone: Done[] = []
  const start = performance.now()
  const end = start + DURATION_S * 1000
  let usersFinished = false
  // The guest: 20 requests in flight for as long as the user is measured (a new one as each ends).
  const workers = Array.from({ length: GUEST_IN_FLIGHT }, async () => {
    while (!usersFinished && !stopGuests.signal.aborted) {
      const d = await chat(url, t.guestKey, GUEST_BODY, stopGuests.signal)
      guestDone.push(d)
      if (d.status !== 200 && !stopGuests.signal.aborted) await sleep(50)
    }
  })
  // Let the guest's backlog build (19 waiting) before the user's first request.
  await sleep(Math.min(1000, (GUEST_TOKENS / TOKENS_PER_S) * 500))
  const users: Promise<Done>[] = []
  const userStart = performance.now()
  const userEnd = userStart + DURATION_S * 1000
  for (let at = userStart; at < userEnd; at += USER_EVERY_MS) {
    await sleep(Math.max(0, at - performance.now()))
    users.push(chat(url, t.userKey, USER_BODY, new AbortController().signal))
  }
  const userDone = await Promise.all(users)
  usersFinished = true
  stopGuests.abort()
  await Promise.all(workers)
  const windowEnd = Math.max(end, userEnd)
  const all = [...guestDone, ...userDone]
  const tokens = all.reduce((n, d) => n + d.tokenTimes.filter((x) => x >= start && x <= windowEnd).length, 0)
  const waits = userDone.filter((d) => d.firstTokenAt > 0).map((d) => (d.firstTokenAt - d.askedAt) / 1000)
  const guestService = guestDone
    .filter((d) => d.status === 200 && d.tokenTimes.length >= GUEST_TOKENS && !d.error)
    .map((d) => (d.endAt - d.firstTokenAt) / 1000)
  // Requests running at once at the stand-in (from the token streams): 1 where OLLAMA_NUM_PARALLEL=1 holds.
  const spans = all
    .filter((d) => d.firstTokenAt > 0)
    .map((d) => [d.firstTokenAt, d.tokenTimes.at(-1) ?? d.firstTokenAt] as const)
  let maxAtOnce = 0
  for (const [a] of spans) {
    const n = spans.filter(([s, e]) => s <= a && a < e).length
    if (n > maxAtOnce) maxAtOnce = n
  }
  return {
    variant: t.name,
    userRequests: userDone.length,
    userFailed: userDone.filter((d) => d.status !== 200 || d.error).length,
    userWaitS: { p50: pct(waits, 50), p95: pct(waits, 95), max: Math.max(...waits) },
    guestRequestsCompleted: guestService.length,
    guestServiceS: { p50: pct(guestService, 50) },
    tokensPerS: tokens / ((windowEnd - start) / 1000),
    maxRunningAtOnce: maxAtOnce,
  }
}

try {
  const fifo = await variant({ name: 'fifo', url: fake.url })
  const gateway = await variant({ name: 'gateway', url: gw.url, guestKey: gw.guestKey, userKey: gw.userKey })
  // One guest request's service time: 200 tokens at the stand-in's pace, as measured through the gateway.
  const service = Number.isFinite(gateway.guestServiceS.p50)
    ? gateway.guestServiceS.p50
    : GUEST_TOKENS / TOKENS_PER_S
  const faithful = fifo.maxRunningAtOnce <= 1
  const rows = [
    {
      metric: 'user wait p50 (s)',
      fifo: fifo.userWaitS.p50,
      gateway: gateway.userWaitS.p50,
      target: '',
      ok: true,
    },
    {
      metric: 'user wait p95 (s)',
      fifo: fifo.userWaitS.p95,
      gateway: gateway.userWaitS.p95,
      target: `≤ 1.5 × guest service (${r2(1.5 * service)})`,
      ok: gateway.userWaitS.p95 <= 1.5 * service,
    },
    {
      metric: 'total tokens/s',
      fifo: fifo.tokensPerS,
      gateway: gateway.tokensPerS,
      target: '≥ 0.95 × FIFO',
      ok: gateway.tokensPerS >= 0.95 * fifo.tokensPerS,
    },
    {
      metric: 'requests running at once at the stand-in',
      fifo: fifo.maxRunningAtOnce,
      gateway: gateway.maxRunningAtOnce,
      target: '1 (OLLAMA_NUM_PARALLEL=1)',
      ok: gateway.maxRunningAtOnce <= 1 && faithful,
    },
    {
      metric: 'user requests failed',
      fifo: fifo.userFailed,
      gateway: gateway.userFailed,
      target: '0',
      ok: gateway.userFailed === 0,
    },
  ]
  console.log(
    `duration ${DURATION_S} s, ${TOKENS_PER_S} tokens/s per answer, guest service ${r2(service)} s${smoke ? ' (smoke run)' : ''}`,
  )
  console.log(
    [
      '| metric | FIFO (straight to the stand-in) | through the gateway | target | ok |',
      '|---|---:|---:|---|---|',
      ...rows.map(
        (r) => `| ${r.metric} | ${r2(r.fifo)} | ${r2(r.gateway)} | ${r.target} | ${r.ok ? 'yes' : 'NO'} |`,
      ),
    ].join('\n'),
  )
  if (!faithful) {
    console.log(
      `\nThe stand-in ran up to ${fifo.maxRunningAtOnce} requests at once with OLLAMA_NUM_PARALLEL=1: it does not queue ` +
        'like Ollama (server/sched.go), so the FIFO column is not a FIFO and the comparison is not valid.',
    )
  }
  const result = {
    bench: 'fairness',
    at: new Date().toISOString(),
    machine: {
      loadavg: loadavg().map((x) => Math.round(x * 100) / 100),
      cpus: cpus().length,
      cpu: cpus()[0]?.model,
      node: process.version,
    },
    durationS: DURATION_S,
    tokensPerS: TOKENS_PER_S,
    load: {
      guestInFlight: GUEST_IN_FLIGHT,
      guestTokens: GUEST_TOKENS,
      userTokens: USER_TOKENS,
      userEveryMs: USER_EVERY_MS,
    },
    guestServiceS: service,
    standInFaithful: faithful,
    fifo,
    gateway,
    rows,
    ok: rows.every((r) => r.ok),
  }
  mkdirSync(join(root, 'bench/results'), { recursive: true })
  const out = smoke ? 'bench/results/fairness.smoke.tmp' : 'bench/results/fairness.json'
  writeFileSync(join(root, out), `${JSON.stringify({ ...result, smoke }, null, 2)}\n`)
  console.log(`\nwrote ${out} (${result.ok ? 'all targets met' : 'some targets missed'})`)
} finally {
  child.kill('SIGTERM')
  await once(child, 'exit').catch(() => {})
  agent.destroy()
  await fake.stop()
}

// `pnpm bench pooling`: the latency a routed request adds over a local one, in one run, in network
// namespaces. Two hosts (bench/_pool-host.mjs, built packages, real hubs, HTTPS with the peer's pinned
// CA) on a veth pair, each with a minimal Ollama mock holding a different model; the client
// (bench/_pool-client.mjs) runs in the origin's namespace and alternates a request for the origin's model
// with one for the peer's. Reports time to first chunk p50/p95 and per-chunk latency p50 for both and the
// difference; target: routed TTFC p50 ≤ local + 2 ms. BENCH_SMOKE=1: a few requests (figures mean nothing; written to pooling.smoke.tmp).
// Needs root and iproute2. Writes bench/results/pooling.json.
import { type ChildProcess, spawn } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import { cpus, loadavg } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { createNetnsPair } from '../packages/core/test/discovery/netns'

const root = new URL('..', import.meta.url).pathname
const smoke = process.env.BENCH_SMOKE === '1'
const RUNS = smoke ? 10 : 400
const CHUNKS = smoke ? 5 : 20

function start(
  ns: string,
  script: string,
  env: Record<string, string>,
): { child: ChildProcess; line: Promise<string> } {
  const child = spawn('ip', ['netns', 'exec', ns, process.execPath, join(root, 'bench', script)], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  const line = new Promise<string>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`${script} exited (${code})`)))
    createInterface({ input: child.stdout! }).once('line', resolve)
  })
  return { child, line }
}

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? Number.NaN
}
const r2 = (x: number) => Math.round(x * 100) / 100

const pair = createNetnsPair('sbp')
const children: ChildProcess[] = []
try {
  const peer = start(pair.b.ns, '_pool-host.mjs', {
    BENCH_ROLE: 'peer',
    BENCH_MODEL: 'llama3.2:3b',
    BENCH_ADDRESS: pair.b.address,
  })
  children.push(peer.child)
  const peerInfo = { ...JSON.parse(await peer.line), address: pair.b.address }
  const origin = start(pair.a.ns, '_pool-host.mjs', {
    BENCH_ROLE: 'origin',
    BENCH_MODEL: 'qwen3:1.7b',
    BENCH_ADDRESS: pair.a.address,
    BENCH_PEER: JSON.stringify(peerInfo),
  })
  children.push(origin.child)
  const { key } = JSON.parse(await origin.line) as { key: string }
  const client = start(pair.a.ns, '_pool-client.mjs', {
    BASE: `http://${pair.a.address}:18080`,
    KEY: key,
    LOCAL_MODEL: 'qwen3:1.7b',
    REMOTE_MODEL: 'llama3.2:3b',
    RUNS: String(RUNS),
    CHUNKS: String(CHUNKS),
  })
  children.push(client.child)
  const r = JSON.parse(await client.line) as Record<'local' | 'routed', { ttfc: number[]; chunk: number[] }>
  const row = (k: 'local' | 'routed') => ({
    ttfc_p50_ms: r2(pct(r[k].ttfc, 50)),
    ttfc_p95_ms: r2(pct(r[k].ttfc, 95)),
    chunk_p50_ms: r2(pct(r[k].chunk, 50)),
  })
  const local = row('local')
  const routed = row('routed')
  const added = {
    ttfc_p50_ms: r2(routed.ttfc_p50_ms - local.ttfc_p50_ms),
    ttfc_p95_ms: r2(routed.ttfc_p95_ms - local.ttfc_p95_ms),
    chunk_p50_ms: r2(routed.chunk_p50_ms - local.chunk_p50_ms),
  }
  console.table({ local, routed, added })
  const target = 2
  console.log(
    `routed TTFC p50 adds ${added.ttfc_p50_ms} ms (target ≤ ${target} ms)${smoke ? ' [smoke run: figures mean nothing]' : ''}`,
  )
  mkdirSync(join(root, 'bench/results'), { recursive: true })
  writeFileSync(
    // A smoke run never overwrites the recorded figures (as bench/gateway.ts and bench/fairness.ts).
    join(root, smoke ? 'bench/results/pooling.smoke.tmp' : 'bench/results/pooling.json'),
    `${JSON.stringify({ at: new Date().toISOString(), smoke, runs: RUNS, chunks: CHUNKS, cpus: cpus().length, loadavg: loadavg(), local, routed, added, target_ttfc_p50_ms: target, met: added.ttfc_p50_ms <= target }, null, 2)}\n`,
  )
} finally {
  for (const c of children) c.kill('SIGTERM')
  await new Promise((r) => setTimeout(r, 300))
  for (const c of children) c.kill('SIGKILL')
  pair.destroy()
}

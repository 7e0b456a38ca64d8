// `pnpm bench ws`: WebSocket fan-out and CLI cold start.
// 1. A host in its own process (real hub, real RAM provider, probe loop at 1 Hz) and N WebSocket clients
//    (default 200) authenticated as the admin, for S seconds (default 60). Measures the server process's CPU
//    (from /proc/<pid>/stat; target ≤ 3 % of one core) and the delivery lag of every `memory_stats` message
//    (receipt time minus the sample's `at`; target p99 ≤ 50 ms).
// 2. Cold start of the built CLI (`node packages/server-express/dist/cli.js`) to a listening port, 5 runs
//    (target ≤ 1.5 s). Needs `pnpm build` first.
// WS_BENCH_CLIENTS and WS_BENCH_SECONDS change the size. Prints a table, writes bench/results/ws.json.
import { type ChildProcess, spawn } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { cpus, loadavg, tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const clients = Number(process.env.WS_BENCH_CLIENTS ?? 200)
const seconds = Number(process.env.WS_BENCH_SECONDS ?? 60)
const TOKEN = 'bench-admin-secret-0123456789abcdef'
const CLK_TCK = 100

if (process.env.WS_BENCH_SERVE) await serve()
else await parent()

async function serve(): Promise<void> {
  // The built core (`pnpm build`), the same module the server's own imports resolve to.
  const { createHub, silentLogger } = await import(
    pathToFileURL(join(root, 'packages/core/dist/index.js')).href
  )
  const { listen } = await import(pathToFileURL(join(root, 'packages/server-express/src/listen.ts')).href)
  const dataDir = mkdtempSync(join(tmpdir(), 'sllm-bench-ws-'))
  const hub = createHub({
    dataDir,
    logger: silentLogger,
    ollama: false,
    discovery: false,
    probeIntervalMs: 1000,
    providerResolveFrom: [pathToFileURL(join(root, 'packages/server-express/package.json')).href],
  })
  await hub.start()
  await hub.admin.ensureSecret(TOKEN)
  const srv = await listen(hub, { port: 0, host: '127.0.0.1' })
  process.stdout.write(`${JSON.stringify({ port: srv.port })}\n`)
  process.on('SIGTERM', async () => {
    await srv.close()
    await hub.stop()
    rmSync(dataDir, { recursive: true, force: true })
    process.exit(0)
  })
}

function cpuTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return Number(fields[11]) + Number(fields[12]) // utime + stime
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!
}

async function fanOut() {
  const { default: WebSocket } = await import(
    pathToFileURL(join(root, 'packages/server-express/node_modules/ws/wrapper.mjs')).href
  )
  // tsx as a loader in this very process (not tsx's CLI, which forks): its pid is the server's CPU.
  const server = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url)], {
    cwd: root,
    env: { ...process.env, WS_BENCH_SERVE: '1' },
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  const port = await new Promise<number>((resolve, reject) => {
    server.stdout!.once('data', (d) => resolve(JSON.parse(String(d)).port))
    server.once('exit', (code) => reject(new Error(`server exited ${code}`)))
  })
  const lags: number[] = []
  let snapshots = 0
  let measuring = false
  const sockets = await Promise.all(
    Array.from(
      { length: clients },
      () =>
        new Promise<InstanceType<typeof WebSocket>>((resolve, reject) => {
          const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`, {
            headers: { Authorization: `Bearer ${TOKEN}` },
          })
          ws.on('message', (data: Buffer) => {
            const msg = JSON.parse(String(data))
            if (msg.type === 'snapshot') snapshots++
            else if (msg.type === 'memory_stats' && measuring) lags.push(Date.now() - msg.at)
          })
          ws.once('open', () => resolve(ws))
          ws.once('error', reject)
        }),
    ),
  )
  await new Promise((r) => setTimeout(r, 1500))
  measuring = true
  const t0 = process.hrtime.bigint()
  const c0 = cpuTicks(server.pid!)
  await new Promise((r) => setTimeout(r, seconds * 1000))
  const c1 = cpuTicks(server.pid!)
  const wall = Number(process.hrtime.bigint() - t0) / 1e9
  measuring = false
  for (const ws of sockets) ws.close()
  server.kill('SIGTERM')
  await new Promise((r) => server.once('exit', r))
  const cpuS = (c1 - c0) / CLK_TCK
  lags.sort((a, b) => a - b)
  return {
    clients,
    seconds: Number(wall.toFixed(1)),
    snapshots,
    messages: lags.length,
    expected_messages: Math.round(clients * wall),
    server_cpu_s: Number(cpuS.toFixed(2)),
    server_cpu_percent_of_one_core: Number(((cpuS / wall) * 100).toFixed(2)),
    lag_ms_p50: percentile(lags, 50),
    lag_ms_p99: percentile(lags, 99),
    lag_ms_max: lags.at(-1) ?? Number.NaN,
  }
}

async function coldStart(runs = 5) {
  const cli = join(root, 'packages/server-express/dist/cli.js')
  const times: number[] = []
  for (let i = 0; i < runs; i++) {
    const dir = mkdtempSync(join(tmpdir(), 'sllm-bench-cold-'))
    const t0 = performance.now()
    const child: ChildProcess = spawn(
      process.execPath,
      [cli, '--port', '0', '--host', '127.0.0.1', '--data-dir', dir, '--no-mdns', '--no-auto-start-ollama'],
      {
        env: {
          ...process.env,
          SHAREDLLM_ADMIN_TOKEN: TOKEN,
          SHAREDLLM_OLLAMA_HOST: 'http://127.0.0.1:9',
          SHAREDLLM_LOG_LEVEL: 'warn',
        },
        stdio: ['ignore', 'pipe', 'ignore'],
      },
    )
    let out = ''
    await new Promise<void>((resolve, reject) => {
      child.stdout!.on('data', (d) => {
        out += d
        if (/listening on port \d+/.test(out)) resolve()
      })
      child.once('exit', (code) => reject(new Error(`cli exited ${code}: ${out}`)))
    })
    times.push(performance.now() - t0)
    child.kill('SIGTERM')
    await new Promise((r) => child.once('exit', r))
    rmSync(dir, { recursive: true, force: true })
  }
  times.sort((a, b) => a - b)
  return {
    runs,
    ms_median: Math.round(percentile(times, 50)),
    ms_min: Math.round(times[0]!),
    ms_max: Math.round(times.at(-1)!),
  }
}

async function parent(): Promise<void> {
  const load = loadavg()[0]!.toFixed(2)
  const ws = await fanOut()
  const cold = await coldStart()
  const result = {
    bench: 'ws',
    at: new Date().toISOString(),
    node: process.version,
    cpus: cpus().length,
    load_average_1m_at_start: Number(load),
    targets: { server_cpu_percent: 3, lag_ms_p99: 50, cold_start_ms: 1500 },
    fan_out: ws,
    cold_start: cold,
  }
  console.table({
    'server CPU % of one core': { value: ws.server_cpu_percent_of_one_core, target: '≤ 3' },
    'memory_stats lag p50 ms': { value: ws.lag_ms_p50, target: '' },
    'memory_stats lag p99 ms': { value: ws.lag_ms_p99, target: '≤ 50' },
    'messages received / expected': { value: `${ws.messages} / ${ws.expected_messages}`, target: '' },
    'CLI cold start median ms': { value: cold.ms_median, target: '≤ 1500' },
  })
  mkdirSync(join(root, 'bench/results'), { recursive: true })
  writeFileSync(join(root, 'bench/results/ws.json'), `${JSON.stringify(result, null, 2)}\n`)
}

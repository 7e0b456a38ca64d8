// `pnpm bench probes`: CPU cost of the memory probe loop at its real cadence (3 s) over 60 s, with all five
// built-in providers on the real host and a fake `nvidia-smi` on PATH (a shell script printing a captured
// query output), so nvidia and ram are active and the other three are probed and found unavailable.
// Three runs side by side, each in its own process: nvidia-smi spawned per sample, nvidia-smi's own loop
// mode (`-lms`, one long-running process), and a baseline with only the ram provider. Target: ≤ 1 % of one core. Prints a table and writes
// bench/results/probes.json. PROBES_BENCH_SECONDS shortens the runs.
import { spawn } from 'node:child_process'
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { cpus, tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const seconds = Number(process.env.PROBES_BENCH_SECONDS ?? 60)
const intervalMs = 3000
type Mode = 'spawn' | 'loop' | 'ram-only'

interface RunResult {
  mode: Mode
  active_providers: string[]
  wall_s: number
  samples: number
  provider_errors: number
  nvidia_smi_starts: number
  cpu_ms_node: number
  cpu_ms_children: number
  cpu_ms_per_sample: number
  percent_of_one_core: number
}

if (process.env.PROBES_BENCH_MODE) await child(process.env.PROBES_BENCH_MODE as Mode)
else await parent()

async function parent(): Promise<void> {
  const bin = mkdtempSync(join(tmpdir(), 'sllm-bench-bin-'))
  const fixture = join(
    root,
    'packages/provider-nvidia/test/fixtures/tesla-p100-query-gpu-csv-units-na-netdata.txt',
  )
  const log = join(bin, 'starts.log')
  // Like nvidia-smi: with -lms, print the header once and a row per period; otherwise print once.
  writeFileSync(
    join(bin, 'nvidia-smi'),
    `#!/bin/sh\necho "$*" >> "${log}.$PROBES_BENCH_MODE"\ncase "$*" in\n*-lms*) head -n 1 '${fixture}'; while :; do tail -n +2 '${fixture}'; echo; sleep 3; done;;\n*) cat '${fixture}';;\nesac\n`,
  )
  chmodSync(join(bin, 'nvidia-smi'), 0o755)
  const env = { ...process.env, PATH: `${bin}:${process.env.PATH}`, PROBES_BENCH_LOG: log }
  const runs = await Promise.all(
    (['spawn', 'loop', 'ram-only'] as const).map(
      (mode) =>
        new Promise<RunResult>((resolve, reject) => {
          // Workspace packages resolve to their TypeScript sources only under the `@sharedllm/source` condition.
          const p = spawn(
            process.execPath,
            ['--conditions=@sharedllm/source', '--import', 'tsx', fileURLToPath(import.meta.url)],
            {
              cwd: root,
              env: { ...env, PROBES_BENCH_MODE: mode },
              stdio: ['ignore', 'pipe', 'inherit'],
            },
          )
          let out = ''
          p.stdout.on('data', (c) => {
            out += c
          })
          p.on('close', (code) => {
            if (code !== 0) reject(new Error(`${mode} run exited ${code}`))
            else resolve(JSON.parse(out.trim().split('\n').at(-1)!))
          })
        }),
    ),
  )
  console.table(
    runs.map((r) => ({
      mode: {
        spawn: 'nvidia-smi per sample',
        loop: 'nvidia-smi -lms (loop)',
        'ram-only': 'baseline: ram only',
      }[r.mode],
      'wall s': r.wall_s,
      samples: r.samples,
      'nvidia-smi starts': r.nvidia_smi_starts,
      errors: r.provider_errors,
      'CPU node ms': r.cpu_ms_node,
      'CPU children ms': r.cpu_ms_children,
      'ms / sample': r.cpu_ms_per_sample,
      '% of one core': r.percent_of_one_core,
      'target %': 1,
    })),
  )
  const result = {
    bench: 'probes',
    at: new Date().toISOString(),
    node: process.version,
    cpus: cpus().length,
    interval_ms: intervalMs,
    fake_tool:
      'sh script printing tesla-p100-query-gpu-csv-units-na-netdata.txt (cat per call, or head/tail + sleep in loop mode)',
    target_percent: 1,
    runs,
  }
  mkdirSync(join(root, 'bench/results'), { recursive: true })
  writeFileSync(join(root, 'bench/results/probes.json'), `${JSON.stringify(result, null, 2)}\n`)
  const loop = runs.find((r) => r.mode === 'loop')!
  if (loop.percent_of_one_core > 1) process.exitCode = 1
}

/** CPU time (ms) of waited-for children, from /proc/self/stat (cutime + cstime, in 1/100 s ticks). */
function childCpuMs(): number {
  const stat = readFileSync('/proc/self/stat', 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(fields[13]) + Number(fields[14])) * 10
}

async function child(mode: Mode): Promise<void> {
  // The root has no dependency on core: import its sources by path (the module the providers resolve to).
  const core: typeof import('../packages/core/src/index') = await import(
    pathToFileURL(join(root, 'packages/core/src/index.ts')).href
  )
  const nvidia: typeof import('../packages/provider-nvidia/src/index') = await import(
    pathToFileURL(join(root, 'packages/provider-nvidia/src/index.ts')).href
  )
  const loaded = await core.loadProviders(core.BUILTIN_PROVIDER_PACKAGES, {
    resolveFrom: [join(root, 'packages/server-express')],
    conditions: ['@sharedllm/source', 'import', 'default'],
  })
  const providers = loaded
    .map((p) =>
      p.name === 'nvidia' ? nvidia.createNvidiaProvider({ loopMs: mode === 'loop' ? intervalMs : 0 }) : p,
    )
    .filter((p) => mode !== 'ram-only' || p.name === 'ram')
  const bus = new core.EventBus()
  let samples = 0
  let errors = 0
  bus.on('memory_stats', () => samples++)
  bus.on('provider_error', () => errors++)
  const set = new core.ProviderSet({
    bus,
    log: core.silentLogger,
    host: core.createRealHost(),
    providers,
    intervalMs,
    hostReserveMb: () => 2048,
    allocatedMb: async () => 0,
  })
  // Measure the steady loop, not module loading: start, then take the counters.
  await set.start()
  const active = set
    .states()
    .filter((s) => s.active)
    .map((s) => s.name)
  const cpu0 = process.cpuUsage()
  const child0 = childCpuMs()
  const wall0 = performance.now()
  const samples0 = samples
  await new Promise((r) => setTimeout(r, seconds * 1000))
  const n = samples - samples0
  await set.stop()
  // Let the looping nvidia-smi be reaped, so its CPU is counted in ours.
  await new Promise((r) => setTimeout(r, 300))
  const cpu = process.cpuUsage(cpu0)
  const childMs = childCpuMs() - child0
  const wallMs = performance.now() - wall0
  const selfMs = (cpu.user + cpu.system) / 1000
  let starts = 0
  try {
    starts = readFileSync(`${process.env.PROBES_BENCH_LOG}.${mode}`, 'utf8').trim().split('\n').length
  } catch {}
  const r: RunResult = {
    mode,
    active_providers: active,
    wall_s: +(wallMs / 1000).toFixed(1),
    samples: n,
    provider_errors: errors,
    nvidia_smi_starts: starts,
    cpu_ms_node: +selfMs.toFixed(1),
    cpu_ms_children: +childMs.toFixed(1),
    cpu_ms_per_sample: +((selfMs + childMs) / Math.max(1, n)).toFixed(2),
    percent_of_one_core: +(((selfMs + childMs) / wallMs) * 100).toFixed(3),
  }
  console.log(JSON.stringify(r))
}

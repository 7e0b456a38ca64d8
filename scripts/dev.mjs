#!/usr/bin/env node
// `pnpm dev`: the sharedLLM server (from source, port 8080) and the PWA's Vite dev server with hot reload
// (port 5173, proxying /api, /ollama, /v1 and /ws to the server). Ctrl+C stops both; so does either one exiting.
// Extra arguments go to the server, e.g. `pnpm dev --ollama-host http://127.0.0.1:11434 --no-mdns`.
import { spawn } from 'node:child_process'
import { join } from 'node:path'

const root = new URL('..', import.meta.url).pathname
const port = process.env.SHAREDLLM_PORT ?? '8080'

const children = [
  spawn(
    process.execPath,
    [
      '--conditions=@sharedllm/source',
      '--import',
      'tsx',
      join(root, 'packages/server-express/src/cli.ts'),
      '--port',
      port,
      ...process.argv.slice(2),
    ],
    { cwd: root, stdio: 'inherit', env: process.env },
  ),
  spawn(process.execPath, [join(root, 'packages/pwa/node_modules/vite/bin/vite.js')], {
    cwd: join(root, 'packages/pwa'),
    stdio: 'inherit',
    env: { ...process.env, SHAREDLLM_DEV_API: `http://localhost:${port}` },
  }),
]

let stopping = false
function stopAll(code) {
  if (stopping) return
  stopping = true
  process.exitCode = code
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGTERM')
  // The server finishes open requests first; do not wait on it forever.
  setTimeout(() => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL')
  }, 10_000).unref()
}
for (const c of children) c.on('exit', (code) => stopAll(code ?? 0))
process.on('SIGINT', () => stopAll(0))
process.on('SIGTERM', () => stopAll(0))

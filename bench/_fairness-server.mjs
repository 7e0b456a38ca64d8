// The gateway under test for bench/fairness.ts, in its own process and from the built packages: a real hub
// on a temp SQLite file attached to the stand-in Ollama (so the `ollama_num_parallel` setting, 1, is the
// queue's capacity, as OLLAMA_NUM_PARALLEL=1 is Ollama's), a guest and a user device with the built-in
// roles (the guest's limits opened just enough to keep 20 requests in flight), and the server's app.
// Prints one JSON line {url, guestKey, userKey}.
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createHub, silentLogger } from '../packages/core/dist/index.js'
import { createApp } from '../packages/server-express/dist/index.js'

const upstream = process.env.BENCH_UPSTREAM
if (!upstream) throw new Error('BENCH_UPSTREAM is not set')
const dir = mkdtempSync(join(tmpdir(), 'sllm-bench-fairness-'))
const hub = createHub({
  dataDir: dir,
  logger: silentLogger,
  capacityMb: () => 65536,
  providers: false,
  discovery: false,
  ollama: false,
})
await hub.start()
await hub.settings.set('ollama_host', upstream)
await hub.settings.set('ollama_num_parallel', 1)
// 20 in flight means 1 running and 19 waiting; no rate limit, and waits as long as a FIFO would make them.
await hub.roles.update('role-guest', {
  max_memory_mb: 16384,
  max_queued: 32,
  requests_per_minute: null,
  max_wait_s: 3600,
})
await hub.roles.update('role-user', { max_memory_mb: 16384, max_wait_s: 3600 })

async function device(name, roleId) {
  const joined = await hub.access.join({ name }, '127.0.0.1')
  await hub.devices.approve(joined.device_id, roleId)
  const claim = await hub.access.claim(joined.request_id, joined.claim_secret, '127.0.0.1')
  return claim.device_key
}
const guestKey = await device('bench-guest', 'role-guest')
const userKey = await device('bench-user', 'role-user')

const app = createApp(hub, { pwaDir: join(dir, 'no-pwa') })
const server = createServer(app)
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address()
  process.stdout.write(`${JSON.stringify({ url: `http://127.0.0.1:${port}`, guestKey, userKey })}\n`)
})

process.on('SIGTERM', async () => {
  server.closeAllConnections()
  server.close()
  await hub.stop()
  rmSync(dir, { recursive: true, force: true })
  process.exit(0)
})

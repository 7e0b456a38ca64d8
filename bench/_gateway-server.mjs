// The gateway under test for bench/gateway.ts, in its own process (as in production) and from the built
// packages (dist/, plain node, no TypeScript loader): a real hub on a temp SQLite file, a device approved
// with a role roomy enough for 1,000 streams, and the server's Express app with core's gateway mounted.
// BENCH_GATEWAY=core serves core's node:http handler alone instead. Prints one JSON line {url, key}.
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createGatewayHandler, createHub, silentLogger } from '../packages/core/dist/index.js'
import { createApp } from '../packages/server-express/dist/index.js'

const upstream = process.env.BENCH_UPSTREAM
if (!upstream) throw new Error('BENCH_UPSTREAM is not set')
const dir = mkdtempSync(join(tmpdir(), 'sllm-bench-gateway-'))
const hub = createHub({
  dataDir: dir,
  logger: silentLogger,
  // The mock upstream stands for an Ollama with 4096 parallel slots (below), and such an Ollama allocates KV
  // for every slot (num_ctx × OLLAMA_NUM_PARALLEL): the slice is made big enough for what it would load.
  capacityMb: () => 8 * 1024 * 1024,
  providers: false,
  discovery: false,
  ollama: false,
})
await hub.start()
await hub.settings.set('ollama_host', upstream)
// The mock serves any number at once: so does the fair-share queue (it still runs on every request).
await hub.settings.set('ollama_num_parallel', 4096)
const role = await hub.roles.create({ name: 'bench', max_memory_mb: 4 * 1024 * 1024, max_concurrent: 1000 })
const joined = await hub.access.join({ name: 'bench-client' }, '127.0.0.1')
await hub.devices.approve(joined.device_id, role.id)
const claim = await hub.access.claim(joined.request_id, joined.claim_secret, '127.0.0.1')

const handler =
  process.env.BENCH_GATEWAY === 'core'
    ? createGatewayHandler(hub)
    : createApp(hub, { pwaDir: join(dir, 'no-pwa') })
const server = createServer(handler)
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address()
  process.stdout.write(`${JSON.stringify({ url: `http://127.0.0.1:${port}`, key: claim.device_key })}\n`)
})

process.on('SIGTERM', async () => {
  server.closeAllConnections()
  server.close()
  await hub.stop()
  rmSync(dir, { recursive: true, force: true })
  process.exit(0)
})

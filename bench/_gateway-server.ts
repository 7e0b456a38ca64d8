// The gateway under test for bench/gateway.ts, in its own process (as in production): a real hub on a
// temp SQLite file, a device approved with a role roomy enough for 1,000 streams, and the gateway router.
// Prints one JSON line {url, key}; exits on SIGTERM.
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import express from '../packages/server-express/node_modules/express/index.js'
import { createHub, silentLogger } from '../packages/core/src/index.ts'
import { createGatewayRouter } from '../packages/server-express/src/gateway/index.ts'

const upstream = process.env.BENCH_UPSTREAM
if (!upstream) throw new Error('BENCH_UPSTREAM is not set')
const dir = mkdtempSync(join(tmpdir(), 'sllm-bench-gateway-'))
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
const role = await hub.roles.create({ name: 'bench', max_memory_mb: 16384, max_concurrent: 1000 })
const joined = await hub.access.join({ name: 'bench-client' }, '127.0.0.1')
await hub.devices.approve(joined.device_id, role.id)
const claim = await hub.access.claim(joined.request_id, joined.claim_secret, '127.0.0.1')

const server = createServer(express().use(createGatewayRouter(hub)))
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address() as AddressInfo
  process.stdout.write(`${JSON.stringify({ url: `http://127.0.0.1:${port}`, key: claim.device_key })}\n`)
})

process.on('SIGTERM', async () => {
  server.closeAllConnections()
  server.close()
  await hub.stop()
  rmSync(dir, { recursive: true, force: true })
  process.exit(0)
})

#!/usr/bin/env node
// sharedLLM's gateway served by node:http alone: no Express, no framework. A hub approves one device in
// code and prints its key; point the official `ollama` client at http://127.0.0.1:<port>/ollama with it.
//
//   OLLAMA_HOST=http://127.0.0.1:11434 node gateway.mjs [port] [data-dir]
import { mkdtempSync } from 'node:fs'
import { createServer } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createGatewayHandler, createHub } from '@sharedllm/core'

const port = Number(process.argv[2] ?? 0)
const dataDir = process.argv[3] ?? mkdtempSync(join(tmpdir(), 'sharedllm-gateway-'))

const hub = createHub({ dataDir, ollama: false, discovery: false, providerResolveFrom: [import.meta.url] })
await hub.start()
if (process.env.OLLAMA_HOST) await hub.settings.set('ollama_host', process.env.OLLAMA_HOST)

// A device joins and the owner approves it, here in code (the server's dashboard does this with a click).
const joined = await hub.access.join({ name: 'laptop' }, '127.0.0.1')
await hub.devices.approve(joined.device_id, 'role-user', 'embed-example')
const { device_key: key } = await hub.access.claim(joined.request_id, joined.claim_secret, '127.0.0.1')

const gateway = createGatewayHandler(hub)
const server = createServer((req, res) => {
  if (gateway.handles((req.url ?? '/').split('?')[0])) return gateway(req, res)
  res.writeHead(404, { 'content-type': 'text/plain' }).end('not here: try /ollama/api/tags\n')
})
server.listen(port, '127.0.0.1', () => {
  const url = `http://127.0.0.1:${server.address().port}`
  console.log(JSON.stringify({ url, ollama: `${url}/ollama`, openai: `${url}/v1`, key }))
})

const stop = async () => {
  server.closeAllConnections()
  server.close()
  gateway.close()
  await hub.stop()
  process.exit(0)
}
process.on('SIGTERM', stop)
process.on('SIGINT', stop)

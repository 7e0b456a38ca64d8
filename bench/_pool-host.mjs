// One host of bench/pooling.ts, inside its network namespace, from the built packages: a real hub (temp
// SQLite) served by listen() over HTTP and HTTPS, with its own minimal Ollama mock on loopback that holds
// one model (BENCH_MODEL) and stamps each chunk with the wall clock (performance.timeOrigin + now).
// BENCH_ROLE=peer: approves a device for the origin and prints {instance_id, https_port, ca_pem,
// ca_fingerprint, key}. BENCH_ROLE=origin: adds that peer as joined (BENCH_PEER, JSON) and a device for
// the client, waits until its pool polls the peer, then prints {key}.
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createHub, silentLogger } from '../packages/core/dist/index.js'
import { HostTls, listen } from '../packages/server-express/dist/index.js'

const MODEL = process.env.BENCH_MODEL
const ADDRESS = process.env.BENCH_ADDRESS
const now = () => performance.timeOrigin + performance.now()
const entry = {
  name: MODEL,
  model: MODEL,
  modified_at: '2026-01-01T00:00:00Z',
  size: 1_000_000_000,
  digest: 'a'.repeat(64),
  details: { format: 'gguf', family: 'llama', parameter_size: '1B', quantization_level: 'Q4_K_M' },
}
const final = JSON.stringify({
  model: MODEL,
  message: { role: 'assistant', content: '' },
  done: true,
  done_reason: 'stop',
  prompt_eval_count: 5,
  eval_count: 20,
})
const mock = createServer((req, res) => {
  const parts = []
  req.on('data', (c) => parts.push(c))
  req.on('end', () => {
    if (req.url === '/api/tags')
      return res
        .writeHead(200, { 'content-type': 'application/json' })
        .end(JSON.stringify({ models: [entry] }))
    if (req.url === '/api/ps')
      return res.writeHead(200, { 'content-type': 'application/json' }).end('{"models":[]}')
    if (req.url === '/api/show')
      return res.writeHead(200, { 'content-type': 'application/json' }).end('{"model_info":{}}')
    if (req.url === '/api/version')
      return res.writeHead(200, { 'content-type': 'application/json' }).end('{"version":"0.33.0"}')
    if (req.url !== '/api/chat') return res.writeHead(404).end('404 page not found')
    const { chunks, intervalMs } = JSON.parse(JSON.parse(Buffer.concat(parts).toString()).messages[0].content)
    res.writeHead(200, { 'content-type': 'application/x-ndjson' })
    let i = 0
    const line = () =>
      `${JSON.stringify({ model: MODEL, message: { role: 'assistant', content: 'tok' }, done: false, i: i++, t: now() })}\n`
    res.write(line())
    const timer = setInterval(() => {
      if (i >= chunks) {
        clearInterval(timer)
        return res.end(`${final}\n`)
      }
      res.write(line())
    }, intervalMs)
    res.on('close', () => clearInterval(timer))
  })
})
await new Promise((r) => mock.listen(0, '127.0.0.1', r))

const dir = mkdtempSync(join(tmpdir(), 'sllm-bench-pool-'))
const hub = createHub({
  dataDir: join(dir, 'data'),
  logger: silentLogger,
  capacityMb: () => 65536,
  freeMb: () => 60000,
  providers: false,
  discovery: false,
  ollama: false,
  pool: { pollIntervalMs: 200 },
})
await hub.start()
await hub.settings.set('ollama_host', `http://127.0.0.1:${mock.address().port}`)
const tls = await HostTls.create({ dataDir: hub.dataDir, addresses: () => [ADDRESS] })
const server = await listen(hub, {
  port: 18080,
  host: ADDRESS,
  pwaDir: join(dir, 'no-pwa'),
  https: { tls, port: 18443 },
})
const role = await hub.roles.create({ name: 'bench', max_memory_mb: 16384, max_concurrent: 64 })
const device = async (name, ip) => {
  const joined = await hub.access.join(
    { name, ...(name === 'origin' ? { instance_id: 'bench-origin-0001' } : {}) },
    ip,
  )
  await hub.devices.approve(joined.device_id, role.id)
  return (await hub.access.claim(joined.request_id, joined.claim_secret, ip)).device_key
}
const print = (o) => process.stdout.write(`${JSON.stringify(o)}\n`)

if (process.env.BENCH_ROLE === 'peer') {
  print({
    instance_id: hub.instanceId,
    https_port: server.https.port,
    ca_pem: tls.certs.caCertPem,
    ca_fingerprint: tls.certs.caFingerprintSha256,
    key: await device('origin', '10.0.0.9'),
  })
} else {
  const peer = JSON.parse(process.env.BENCH_PEER)
  const t = Date.now()
  await hub.db('peers').insert({
    id: 'bench-peer',
    instance_id: peer.instance_id,
    name: 'bench-peer',
    addresses: JSON.stringify([peer.address]),
    paired_addresses: JSON.stringify([peer.address]),
    port: 18080,
    version: '0.1.0',
    last_seen: t,
    online: true,
    status: 'joined',
    device_key: peer.key,
    ca_pem: peer.ca_pem,
    ca_fingerprint: peer.ca_fingerprint,
    https_port: peer.https_port,
    created_at: t,
    updated_at: t,
  })
  const key = await device('client', '10.0.0.8')
  for (;;) {
    const view = await hub.pool.poolView({ kind: 'admin' })
    if (view.hosts.some((h) => !h.self && h.up)) break
    await new Promise((r) => setTimeout(r, 50))
  }
  print({ key })
}

process.on('SIGTERM', async () => {
  tls.stop()
  await server.close()
  await hub.stop()
  mock.close()
  rmSync(dir, { recursive: true, force: true })
  process.exit(0)
})

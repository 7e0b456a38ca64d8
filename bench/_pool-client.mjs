// The load generator of bench/pooling.ts, inside the origin's namespace: alternates a request for the
// origin's own model and one for the model only the peer has, through the origin's gateway, and prints
// {local: {ttfc, chunk}, routed: {ttfc, chunk}} in ms (chunk: arrival minus the mock's wall-clock stamp).
import { Agent, request } from 'node:http'

const { BASE, KEY, LOCAL_MODEL, REMOTE_MODEL, RUNS, CHUNKS } = process.env
const agent = new Agent({ keepAlive: true, maxSockets: 4 })
const now = () => performance.timeOrigin + performance.now()
const u = new URL(`${BASE}/ollama/api/chat`)

function once(model) {
  return new Promise((resolve, reject) => {
    const body = JSON.stringify({
      model,
      messages: [{ role: 'user', content: JSON.stringify({ chunks: Number(CHUNKS), intervalMs: 2 }) }],
    })
    const started = performance.now()
    let ttfc
    const chunk = []
    let buf = ''
    const req = request(
      {
        hostname: u.hostname,
        port: u.port,
        path: u.pathname,
        method: 'POST',
        agent,
        headers: {
          authorization: `Bearer ${KEY}`,
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(body),
        },
      },
      (res) => {
        if (res.statusCode !== 200) return reject(new Error(`status ${res.statusCode} for ${model}`))
        res.on('data', (d) => {
          const at = now()
          if (ttfc === undefined) ttfc = performance.now() - started
          buf += d
          for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
            const line = JSON.parse(buf.slice(0, nl))
            buf = buf.slice(nl + 1)
            if (typeof line.t === 'number' && line.i > 0) chunk.push(at - line.t)
          }
        })
        res.on('end', () => resolve({ ttfc, chunk }))
      },
    )
    req.on('error', reject)
    req.end(body)
  })
}

const out = { local: { ttfc: [], chunk: [] }, routed: { ttfc: [], chunk: [] } }
for (let i = 0; i < 5; i++) {
  await once(LOCAL_MODEL)
  await once(REMOTE_MODEL)
}
for (let i = 0; i < Number(RUNS); i++) {
  for (const [kind, model] of i % 2
    ? [
        ['local', LOCAL_MODEL],
        ['routed', REMOTE_MODEL],
      ]
    : [
        ['routed', REMOTE_MODEL],
        ['local', LOCAL_MODEL],
      ]) {
    const r = await once(model)
    out[kind].ttfc.push(r.ttfc)
    out[kind].chunk.push(...r.chunk)
  }
}
process.stdout.write(`${JSON.stringify(out)}\n`)
process.exit(0)

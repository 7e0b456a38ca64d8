// The stand-in's model runner: one child process per loaded model, as `ollama serve` starts llama-server
// (llm/llama_server.go NewLlamaServerRunner). It listens on a loopback port, answers /health, and generates
// the reply pieces it is sent at the configured tokens/s. Like the real runner it does not die with its
// parent: a SIGKILL of `ollama serve` leaves it running and holding its memory (ollama/ollama#5642). So that
// test machines do not fill up with orphans, an orphaned stand-in runner exits after
// FAKE_OLLAMA_ORPHAN_TTL_MS (default 120000; the real one never does).
import { unlinkSync } from 'node:fs'
import { createServer } from 'node:http'
import { join } from 'node:path'

const args = {}
for (let i = 2; i + 1 < process.argv.length; i += 2)
  args[process.argv[i].replace(/^--/, '')] = process.argv[i + 1]
const parent = process.ppid
const orphanTtl = Number(process.env.FAKE_OLLAMA_ORPHAN_TTL_MS ?? 120_000)
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

const server = createServer(async (req, res) => {
  if (req.url === '/health') {
    res.writeHead(200, { 'content-type': 'application/json' })
    return res.end(JSON.stringify({ status: 'ok', model: args.model, pid: process.pid }))
  }
  if (req.url === '/completion' && req.method === 'POST') {
    const parts = []
    for await (const c of req) parts.push(c)
    const {
      pieces = [],
      tokensPerSecond = 1000,
      pieceDelayMs = 0,
      crashAfter = -1,
    } = JSON.parse(Buffer.concat(parts).toString('utf8') || '{}')
    res.writeHead(200, { 'content-type': 'application/x-ndjson' })
    const perToken = tokensPerSecond > 0 ? 1000 / tokensPerSecond : 0
    let written = Promise.resolve()
    for (let i = 0; i < pieces.length; i++) {
      if (i === crashAfter) {
        // the "runner crash" switch: the process dies mid-answer, once what it wrote has left
        await written
        setTimeout(() => process.exit(3), 20)
        return
      }
      const wait = perToken + pieceDelayMs
      if (wait > 0) await sleep(wait)
      if (res.destroyed) return
      written = new Promise((r) => res.write(`${JSON.stringify({ content: pieces[i] })}\n`, r))
    }
    return res.end(`${JSON.stringify({ done: true })}\n`)
  }
  res.writeHead(404)
  res.end()
})

server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`runner listening on ${server.address().port}\n`)
})
process.stdout.on('error', () => {}) // the parent may be gone
// its claim on the shared simulated GPU (FAKE_OLLAMA_GPU_ID) ends with the process
process.on('exit', () => {
  if (!args['gpu-dir']) return
  try {
    unlinkSync(join(args['gpu-dir'], `${process.pid}.json`))
  } catch {}
})
process.on('SIGTERM', () => process.exit(0))
process.on('SIGINT', () => process.exit(0))

const watch = setInterval(() => {
  let alive = true
  try {
    process.kill(parent, 0)
  } catch {
    alive = false
  }
  if (!alive || process.ppid !== parent) {
    clearInterval(watch)
    setTimeout(() => process.exit(0), orphanTtl)
  }
}, 500)

import { type ChildProcess, spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { request } from 'node:http'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, expect, it } from 'vitest'

// The order of work costs a refused request nothing: 64 parallel 15 MiB bodies from one guest key (one
// slot, 1 MiB body limit) are refused before their bodies are read, so the gateway's memory stays flat.
// The gateway runs in its own process so that its RSS is measured, not the test's.
const serve = fileURLToPath(new URL('./fixtures/gateway/serve.ts', import.meta.url))
const tsx = fileURLToPath(new URL('../../../node_modules/tsx/dist/esm/index.mjs', import.meta.url))
const MiB = 1024 * 1024

let child: ChildProcess
let gw: { url: string; key: string; pid: number }

beforeAll(async () => {
  child = spawn(process.execPath, ['--import', tsx, serve], { stdio: ['ignore', 'pipe', 'inherit'] })
  const line = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).once('line', resolve)
    child.once('exit', (code) => reject(new Error(`gateway process exited with ${code}`)))
  })
  gw = JSON.parse(line)
}, 60_000)
afterAll(() => {
  child?.kill('SIGTERM')
})

const rss = () => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${gw.pid}/status`, 'utf8'))?.[1]) * 1024

function send(body: Buffer, contentLength: boolean): Promise<number | string> {
  return new Promise((resolve) => {
    const req = request(`${gw.url}/ollama/api/chat`, {
      method: 'POST',
      headers: {
        Authorization: `Bearer ${gw.key}`,
        'content-type': 'application/json',
        ...(contentLength ? { 'content-length': body.length } : { 'transfer-encoding': 'chunked' }),
      },
    })
    req.on('response', (res) => {
      res.resume()
      res.on('end', () => resolve(res.statusCode ?? 0))
      res.on('error', () => resolve(res.statusCode ?? 0))
    })
    req.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'))
    req.end(body)
  })
}

it.runIf(process.platform === 'linux')(
  '64 parallel refused 15 MiB bodies from one guest key: the gateway’s RSS grows by less than 64 MiB',
  async () => {
    // One buffer for every request: the client's memory is not what is measured.
    const body = Buffer.alloc(15 * MiB, 0x20)
    body.write('{"model":"qwen3:1.7b","messages":[],"pad":"')
    body.write('"}', body.length - 2)
    // Warm up the path (JIT, first SQLite reads) with small requests.
    for (let i = 0; i < 3; i++) await send(Buffer.from('{"model":"qwen3:1.7b"}'), true)
    global.gc?.()
    const before = rss()
    let peak = before
    const sampler = setInterval(() => {
      peak = Math.max(peak, rss())
    }, 5)
    const statuses = await Promise.all(Array.from({ length: 64 }, (_, i) => send(body, i % 2 === 0)))
    clearInterval(sampler)
    peak = Math.max(peak, rss())
    // Every one refused (429: the slot or the rate; 413: the one that got the slot, past 1 MiB), or cut
    // by the server while the client was still sending; never admitted, never a 5xx.
    for (const s of statuses) expect([413, 429, 'ECONNRESET', 'EPIPE']).toContain(s)
    expect(statuses.filter((s) => s === 413 || s === 429).length).toBeGreaterThan(32)
    expect(peak - before).toBeLessThan(64 * MiB)
  },
  60_000,
)

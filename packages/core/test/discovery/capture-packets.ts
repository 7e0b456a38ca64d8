// Captures the mDNS responses one real bonjour-service publisher sends (announcement and goodbye), as
// multicast-dns decodes them, into fixtures/. Run as root: `node --import tsx test/discovery/capture-packets.ts`.
import { spawn } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { createNetnsPair } from './netns'

const here = new URL('.', import.meta.url).pathname
const pair = createNetnsPair('slcap')
const run = (ns: string, code: string) =>
  spawn('ip', ['netns', 'exec', ns, process.execPath, '--input-type=module', '-e', code], {
    cwd: join(here, '../..'),
    stdio: ['ignore', 'pipe', 'inherit'],
  })
const listener = run(
  pair.a.ns,
  `import { Bonjour } from 'bonjour-service'
   const b = new Bonjour({}, () => {})
   const out = []
   const txt = (r) => r.type === 'TXT' ? { ...r, data: r.data.map((d) => d.toString('utf8')) } : r
   b.server.mdns.on('response', (p, rinfo) => {
     if (!p.answers.some((r) => r.name === '_sharedllm._tcp.local')) return
     out.push({ source: rinfo.address, answers: p.answers.map(txt), additionals: p.additionals.map(txt) })
     if (out.some((o) => o.answers.some((r) => r.ttl === 0))) { console.log(JSON.stringify(out)); b.destroy(); process.exit(0) }
   })`,
)
setTimeout(() => {
  const publisher = run(
    pair.b.ns,
    `import { Bonjour } from 'bonjour-service'
     const b = new Bonjour({}, () => {})
     const s = b.publish({ name: 'kitchen-pc (1b4e28ba)', type: 'sharedllm', port: 8080,
       txt: { id: '1b4e28ba-2fa1-41d2-883f-0016d3cca427', v: '0.1.0', port: '8080', auth: 'required', name: 'kitchen-pc' } })
     s.on('up', () => setTimeout(() => s.stop(() => b.destroy()), 300))`,
  )
  publisher.on('exit', () => {})
}, 500)
let text = ''
listener.stdout?.on('data', (d) => {
  text += d
})
listener.on('exit', () => {
  pair.destroy()
  const packets = JSON.parse(text) as unknown[]
  writeFileSync(join(here, 'fixtures/bonjour-packets.json'), `${JSON.stringify(packets, null, 2)}\n`)
  console.log(`captured ${packets.length} packets`)
})

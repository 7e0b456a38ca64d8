// A hostile host on the pooling test's LAN: `ip netns exec <ns> node --import tsx ns-mallory.ts <ports>`.
// Listens on the given TCP ports and keeps every byte it is sent; on stdin, {id, cmd: 'spoof', args:
// {adverts}} sends forged mDNS adverts and {id, cmd: 'captured'} answers with what arrived (latin1 text).
import { createServer } from 'node:net'
import { createInterface } from 'node:readline'
import { type SpoofedAdvert, sendSpoofedAdverts } from './spoof'

const captured: Array<{ port: number; data: string }> = []
for (const port of process.argv.slice(2).map(Number)) {
  createServer((socket) => {
    const entry = { port, data: '' }
    captured.push(entry)
    socket.on('data', (d) => {
      entry.data += d.toString('latin1')
      if (entry.data.length > 65536) socket.destroy()
    })
    socket.on('error', () => {})
  }).listen(port, '0.0.0.0')
}

createInterface({ input: process.stdin }).on('line', async (line) => {
  const { id, cmd, args } = JSON.parse(line) as {
    id: number
    cmd: string
    args?: { adverts?: SpoofedAdvert[] }
  }
  try {
    const result = cmd === 'spoof' ? await sendSpoofedAdverts(args?.adverts ?? []) : captured
    process.stdout.write(`${JSON.stringify({ id, result: result ?? true })}\n`)
  } catch (err) {
    process.stdout.write(`${JSON.stringify({ id, error: String(err) })}\n`)
  }
})
process.stdout.write(`${JSON.stringify({ ready: true })}\n`)

// The clients of the pooling namespace test, inside a host's namespace: `ip netns exec <ns> node --import tsx
// ns-pool-client.ts`. JSON lines {id, cmd, args} in; {id, result | error} out. Commands: `http` (one
// request), `ollama` / `openai` (a streamed chat with the official client), `stream` (starts a streamed
// chat and answers after its first chunk) and `streamEnd` (answers once that stream ended or was cut).
import { createInterface } from 'node:readline'
import { Ollama } from 'ollama'
import OpenAI from 'openai'

type Args = Record<string, unknown>
const streams = new Map<string, Promise<{ cut: boolean; text: string }>>()

const commands: Record<string, (a: Args) => Promise<unknown>> = {
  async http(a) {
    let res: Response
    try {
      res = await fetch(String(a.url), {
        method: String(a.method ?? 'GET'),
        headers: {
          ...(a.body === undefined ? {} : { 'content-type': 'application/json' }),
          ...(a.headers as object),
        },
        body: a.body === undefined ? undefined : JSON.stringify(a.body),
        signal: AbortSignal.timeout(10_000),
      })
    } catch (err) {
      return {
        status: 0,
        body: String((err as { cause?: { code?: string } }).cause?.code ?? err),
        headers: {},
      }
    }
    const text = await res.text()
    let body: unknown = text
    try {
      body = JSON.parse(text)
    } catch {}
    return { status: res.status, body, headers: Object.fromEntries(res.headers) }
  },
  async ollama(a) {
    const client = new Ollama({ host: `${a.base}/ollama`, headers: { authorization: `Bearer ${a.key}` } })
    const stream = await client.chat({
      model: String(a.model),
      messages: [{ role: 'user', content: String(a.content) }],
      stream: true,
    })
    let text = ''
    let chunks = 0
    for await (const part of stream) {
      text += part.message.content
      chunks++
    }
    return { text, chunks }
  },
  async openai(a) {
    const client = new OpenAI({ baseURL: `${a.base}/v1`, apiKey: String(a.key), maxRetries: 0 })
    const stream = await client.chat.completions.create({
      model: String(a.model),
      messages: [{ role: 'user', content: String(a.content) }],
      stream: true,
    })
    let text = ''
    for await (const ch of stream) text += ch.choices[0]?.delta?.content ?? ''
    return { text }
  },
  async stream(a) {
    const res = await fetch(`${a.base}/ollama/api/chat`, {
      method: 'POST',
      headers: { authorization: `Bearer ${a.key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: a.model, messages: [{ role: 'user', content: a.content }] }),
    })
    const reader = (res.body as ReadableStream<Uint8Array>).getReader()
    const first = await reader.read()
    let text = first.value ? Buffer.from(first.value).toString() : ''
    streams.set(
      String(a.name),
      (async () => {
        try {
          for (;;) {
            const r = await reader.read()
            if (r.done) return { cut: false, text }
            text += Buffer.from(r.value).toString()
          }
        } catch {
          return { cut: true, text }
        }
      })(),
    )
    return { status: res.status, first: text }
  },
  async streamEnd(a) {
    return streams.get(String(a.name))
  },
}

createInterface({ input: process.stdin }).on('line', (line) => {
  const { id, cmd, args } = JSON.parse(line) as { id: number; cmd: string; args?: Args }
  const fn = commands[cmd]
  const write = (msg: unknown) => process.stdout.write(`${JSON.stringify(msg)}\n`)
  if (!fn) return write({ id, error: `unknown command ${cmd}` })
  fn(args ?? {}).then(
    (result) => write({ id, result }),
    (err: Error) => write({ id, error: `${err.name}: ${err.message}` }),
  )
})
process.stdout.write(`${JSON.stringify({ ready: true })}\n`)

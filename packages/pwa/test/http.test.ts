import { describe, expect, it } from 'vitest'
import { errorFrom, readNdjson } from '../src/api/http'
import { clientSnippets } from '../src/lib/snippets'
import { suggestedDeviceName } from '../src/lib/platform'

function chunked(parts: string[]): Response {
  const enc = new TextEncoder()
  return new Response(
    new ReadableStream({
      start(c) {
        for (const p of parts) c.enqueue(enc.encode(p))
        c.close()
      },
    }),
  )
}

describe('readNdjson', () => {
  it('reassembles lines split across chunks and skips a garbled one', async () => {
    const res = chunked([
      '{"message":{"content":"He',
      'llo"},"done":false}\n{bad}\n',
      '{"done":true,"eval_count":3}',
    ])
    const lines = []
    for await (const l of readNdjson<Record<string, unknown>>(res)) lines.push(l)
    expect(lines).toEqual([
      { message: { content: 'Hello' }, done: false },
      { done: true, eval_count: 3 },
    ])
  })
})

describe('errorFrom', () => {
  it('uses the API’s own message and code', async () => {
    const res = new Response(
      JSON.stringify({ error: "Role 'guest' cannot pull models", code: 'FORBIDDEN' }),
      { status: 403 },
    )
    const err = await errorFrom(res)
    expect(err).toMatchObject({ status: 403, code: 'FORBIDDEN', message: "Role 'guest' cannot pull models" })
  })
  it('falls back to the status when the body is not JSON', async () => {
    const err = await errorFrom(new Response('<html>', { status: 502, statusText: 'Bad Gateway' }))
    expect(err.message).toBe('The host answered 502 Bad Gateway')
  })
})

describe('snippets and device name', () => {
  it('builds ready-to-paste snippets against the gateway paths', () => {
    const s = clientSnippets('http://192.168.1.5:8080', 'sllm_k', 'llama3.2:3b')
    expect(s.curl).toContain('http://192.168.1.5:8080/ollama/api/chat')
    expect(s.curl).toContain('Authorization: Bearer sllm_k')
    expect(s.ollama).toContain("host: 'http://192.168.1.5:8080/ollama'")
    expect(s.openai).toContain("baseURL: 'http://192.168.1.5:8080/v1', apiKey: 'sllm_k'")
  })
  it('names a phone from its user agent', () => {
    const pixel =
      'Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Mobile Safari/537.36'
    const iphone =
      'Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1'
    expect(suggestedDeviceName({ userAgent: pixel })).toBe('Android phone (Chrome)')
    expect(suggestedDeviceName({ userAgent: iphone })).toBe('iPhone (Safari)')
  })
})

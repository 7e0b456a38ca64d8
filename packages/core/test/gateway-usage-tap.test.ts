import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fakeOllamaDir } from '../src/testing/index'
import { describe, expect, it } from 'vitest'
import { countsFrom, tapFor, type UsageTap } from '../src/gateway/http/usage-tap'

// Real captured Ollama output (the fake's fixtures, each with its .source.md).
const fixture = (name: string) => readFileSync(join(fakeOllamaDir, 'fixtures', name), 'utf8')
const compact = (name: string) => JSON.stringify(JSON.parse(fixture(name)))

/** Feeds `input` in pieces cut at `cuts`; returns what the tap let through. */
function feed(tap: UsageTap, input: Buffer, cuts: number[]): Buffer {
  const out: Buffer[] = []
  let at = 0
  for (const cut of [...cuts, input.length]) {
    out.push(tap.push(input.subarray(at, cut)))
    at = cut
  }
  out.push(tap.end())
  return Buffer.concat(out)
}

function everySplit(input: Buffer, check: (cuts: number[]) => void): void {
  check([])
  for (let i = 1; i < input.length; i++) check([i])
  // and byte by byte
  check(Array.from({ length: input.length - 1 }, (_, i) => i + 1))
}

describe('usage tap', () => {
  it('NDJSON: finds the final counts wherever the chunks are cut, and passes every byte through', () => {
    const stream = Buffer.from(
      `${compact('docs-api-chat-stream-chunk.json')}\n${compact('docs-api-chat-stream-final.json')}\n`,
    )
    everySplit(stream, (cuts) => {
      const tap = tapFor('application/x-ndjson') as UsageTap
      expect(feed(tap, stream, cuts).equals(stream)).toBe(true)
      expect(tap.counts).toEqual({ prompt_tokens: 26, completion_tokens: 282 })
      expect(tap.streamError).toBeUndefined()
    })
  })

  it('NDJSON: an error line inside a 200 stream is reported, and there are no counts', () => {
    const tap = tapFor('application/x-ndjson; charset=utf-8') as UsageTap
    const stream = Buffer.from(fixture('docs-api-error-mid-stream.txt'))
    expect(feed(tap, stream, [7, 100]).equals(stream)).toBe(true)
    expect(tap.streamError).toBe('an error was encountered while running the model')
    expect(tap.counts).toBeUndefined()
  })

  it('NDJSON: a pull stream that ends with success', () => {
    const tap = tapFor('application/x-ndjson') as UsageTap
    feed(tap, Buffer.from(fixture('api-pull-stream-tail-fragment.txt')), [3])
    expect(tap.success).toBe(true)
    const failing = tapFor('application/x-ndjson') as UsageTap
    feed(failing, Buffer.from(fixture('api-pull-stream-error-in-stream.txt')), [])
    expect(failing.success).toBe(false)
    expect(failing.streamError).toBeTruthy()
  })

  // The captured SSE stream (two blank lines between events, as recorded) plus the usage-only event that
  // Ollama adds with stream_options.include_usage and the [DONE] frame it always ends with.
  const captured = fixture('openai-v1-chat-completions-sse-content-stream.txt').trimEnd()
  const usageEvent = `data: ${JSON.stringify({ id: 'chatcmpl-192', object: 'chat.completion.chunk', created: 1744646668, model: 'qwen2.5-coder:7b-instruct-q8_0', system_fingerprint: 'fp_ollama', choices: [], usage: { prompt_tokens: 31, completion_tokens: 7, total_tokens: 38 } })}\n\n`
  const withUsage = Buffer.from(`${captured}\n\n${usageEvent}data: [DONE]\n\n`)
  const withoutUsage = Buffer.from(`${captured}\n\ndata: [DONE]\n\n`)

  it('SSE: records the usage event and passes it on when the client asked for it', () => {
    const tap = tapFor('text/event-stream') as UsageTap
    expect(feed(tap, withUsage, [50, 400, 1200]).equals(withUsage)).toBe(true)
    expect(tap.counts).toEqual({ prompt_tokens: 31, completion_tokens: 7 })
  })

  it('SSE strip: removes exactly the usage-only event, wherever the chunks are cut', () => {
    everySplit(withUsage, (cuts) => {
      const tap = tapFor('text/event-stream', { stripUsageEvent: true }) as UsageTap
      expect(feed(tap, withUsage, cuts).toString()).toBe(withoutUsage.toString())
      expect(tap.counts).toEqual({ prompt_tokens: 31, completion_tokens: 7 })
    })
  })

  it('SSE strip: a chunk of whole events is sent on as the very same buffer (no copy)', () => {
    const tap = tapFor('text/event-stream', { stripUsageEvent: true }) as UsageTap
    const event = Buffer.from('data: {"choices":[{"delta":{"content":"x"}}]}\n\n')
    expect(tap.push(event)).toBe(event)
  })

  it('JSON bodies: Ollama counts, OpenAI usage, embeddings', () => {
    const final = Buffer.from(compact('docs-api-generate-stream-final.json'))
    const tap = tapFor('application/json; charset=utf-8') as UsageTap
    feed(tap, final, [10])
    expect(tap.counts?.completion_tokens).toBe(JSON.parse(final.toString()).eval_count)
    expect(countsFrom({ usage: { prompt_tokens: 4, total_tokens: 4 } })).toEqual({
      prompt_tokens: 4,
      completion_tokens: 0,
    })
    expect(countsFrom({ prompt_eval_count: 3 })).toEqual({ prompt_tokens: 3, completion_tokens: 0 })
    expect(countsFrom({ usage: 'x' })).toBeUndefined()
    expect(tapFor('text/plain')).toBeUndefined()
  })
})

describe('usage tap: output charged per streamed chunk (for the fair-share queue)', () => {
  it('NDJSON: one per content line wherever the chunks are cut, none for the final line', () => {
    const chunk = compact('docs-api-chat-stream-chunk.json')
    const stream = Buffer.from(
      `${chunk}\n${chunk}\n${chunk}\n${compact('docs-api-chat-stream-final.json')}\n`,
    )
    everySplit(stream, (cuts) => {
      let n = 0
      const tap = tapFor('application/x-ndjson', { onOutput: (k) => (n += k) }) as UsageTap
      feed(tap, stream, cuts)
      expect(n).toBe(3)
    })
  })

  it('SSE: one per content event; the usage event and [DONE] are not output', () => {
    const captured = fixture('openai-v1-chat-completions-sse-content-stream.txt')
    const events = captured.split('\n\n').filter((e) => e.trim().length > 0)
    const content = events.filter((e) => !e.includes('[DONE]') && !e.includes('"usage"')).length
    expect(content).toBeGreaterThan(0)
    for (const strip of [false, true]) {
      let n = 0
      const tap = tapFor('text/event-stream', {
        stripUsageEvent: strip,
        onOutput: (k) => (n += k),
      }) as UsageTap
      feed(tap, Buffer.from(captured), [7, 100])
      expect(n).toBe(content)
    }
  })
})

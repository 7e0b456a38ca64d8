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
})

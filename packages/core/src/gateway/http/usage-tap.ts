import { StringDecoder } from 'node:string_decoder'
import { isPlainObject } from '../request-body'

export interface UsageCounts {
  prompt_tokens: number
  completion_tokens: number
}

/**
 * Watches an upstream response body on its way to the client for Ollama's final counts, without delaying
 * it: `push` returns the bytes to send on at once (the chunk itself).
 */
export interface UsageTap {
  push(chunk: Buffer): Buffer
  /** Called when the upstream body ended; returns any bytes still held back. */
  end(): Buffer
  readonly counts: UsageCounts | undefined
  /** An `{"error": …}` line or event inside a 2xx stream (Ollama reports mid-stream failures that way). */
  readonly streamError: string | undefined
  /** A pull stream ended with `{"status":"success"}`. */
  readonly success: boolean
}

/** Largest line, event or JSON body inspected; anything bigger passes through unread. */
const MAX_INSPECT = 8 * 1024 * 1024
const EMPTY = Buffer.alloc(0)
const DONE = /"done"\s*:\s*true/

function num(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isFinite(v) && v >= 0 ? Math.round(v) : undefined
}

/** Counts from an Ollama final object (`prompt_eval_count`, `eval_count`) or an OpenAI `usage` object. */
export function countsFrom(obj: unknown): UsageCounts | undefined {
  if (!obj || typeof obj !== 'object') return undefined
  const o = obj as Record<string, unknown>
  const usage = o.usage
  if (usage && typeof usage === 'object') {
    const u = usage as Record<string, unknown>
    const prompt = num(u.prompt_tokens)
    if (prompt !== undefined)
      return { prompt_tokens: prompt, completion_tokens: num(u.completion_tokens) ?? 0 }
  }
  const prompt = num(o.prompt_eval_count)
  const completion = num(o.eval_count)
  if (prompt === undefined && completion === undefined) return undefined
  return { prompt_tokens: prompt ?? 0, completion_tokens: completion ?? 0 }
}

function parse(text: string): Record<string, unknown> | undefined {
  try {
    const v = JSON.parse(text) as unknown
    return isPlainObject(v) ? v : undefined
  } catch {
    return undefined
  }
}

function errorText(obj: Record<string, unknown>): string | undefined {
  const e = obj.error
  if (typeof e === 'string') return e
  if (e && typeof e === 'object' && typeof (e as { message?: unknown }).message === 'string') {
    return (e as { message: string }).message
  }
  return undefined
}

/** Called with 1 for each streamed content chunk (Ollama streams one token per chunk), for the queue. */
type OnOutput = (tokens: number) => void

abstract class TapBase implements UsageTap {
  counts: UsageCounts | undefined
  streamError: string | undefined
  success = false
  constructor(protected readonly onOutput?: OnOutput) {}
  abstract push(chunk: Buffer): Buffer
  abstract end(): Buffer

  protected inspect(obj: Record<string, unknown> | undefined): void {
    if (!obj) return
    const err = errorText(obj)
    if (err !== undefined) this.streamError = err
    if (obj.status === 'success') this.success = true
    const counts = countsFrom(obj)
    if (counts && (obj.done === true || obj.usage !== undefined)) this.counts = counts
  }
}

/** Ollama's NDJSON streams: the `"done":true` line carries the counts. */
class NdjsonTap extends TapBase {
  private readonly decoder = new StringDecoder('utf8')
  private pending = ''

  push(chunk: Buffer): Buffer {
    const from = this.pending.length
    this.pending += this.decoder.write(chunk)
    let nl = this.pending.indexOf('\n', from)
    while (nl !== -1) {
      this.line(this.pending.slice(0, nl))
      this.pending = this.pending.slice(nl + 1)
      nl = this.pending.indexOf('\n')
    }
    if (this.pending.length > MAX_INSPECT) this.pending = ''
    return chunk
  }

  end(): Buffer {
    this.pending += this.decoder.end()
    if (this.pending.trim()) this.line(this.pending)
    this.pending = ''
    return EMPTY
  }

  private line(line: string): void {
    // Only the few lines that can matter are parsed; content chunks are skipped on a substring check.
    if (DONE.test(line) || line.includes('"error"') || line.includes('"success"')) {
      this.inspect(parse(line))
    } else if (this.onOutput && line.length > 0) this.onOutput(1)
  }
}

/** A whole JSON body (non-streaming answers): parsed once it ended. */
class JsonTap extends TapBase {
  private parts: Buffer[] = []
  private size = 0

  push(chunk: Buffer): Buffer {
    if (this.size <= MAX_INSPECT) {
      this.parts.push(chunk)
      this.size += chunk.length
    }
    return chunk
  }

  end(): Buffer {
    if (this.size <= MAX_INSPECT) this.inspect(parse(Buffer.concat(this.parts).toString('utf8')))
    this.parts = []
    return EMPTY
  }

  protected override inspect(obj: Record<string, unknown> | undefined): void {
    if (!obj) return
    if (obj.status === 'success') this.success = true
    this.counts = countsFrom(obj)
  }
}

/** The tap for an upstream content type, or undefined for bodies that carry no counts. */
export function tapFor(
  contentType: string | undefined,
  opts: { onOutput?: OnOutput } = {},
): UsageTap | undefined {
  // Every upstream answer is native (the OpenAI routes are translated, a peer is asked on its native routes):
  // NDJSON streams or one JSON object.
  const type = (contentType ?? '').split(';')[0]?.trim().toLowerCase()
  if (type === 'application/x-ndjson') return new NdjsonTap(opts.onOutput)
  if (type === 'application/json') return new JsonTap()
  return undefined
}

import type { IncomingMessage } from 'node:http'
import { SharedLLMError } from '../../errors'

/**
 * Body bytes held in memory per device while requests are being read: a device with several slots cannot
 * make the host buffer more than this at once, whatever its role's per-request limit.
 */
export class BodyMeter {
  private readonly held = new Map<string, number>()

  constructor(private readonly perDevice: number) {}

  /** Takes `n` bytes for `key`; false when that would pass the cap (nothing is taken then). */
  take(key: string, n: number, limit: number): boolean {
    const now = (this.held.get(key) ?? 0) + n
    if (now > Math.max(this.perDevice, limit)) return false
    this.held.set(key, now)
    return true
  }

  give(key: string, n: number): void {
    const now = (this.held.get(key) ?? 0) - n
    if (now <= 0) this.held.delete(key)
    else this.held.set(key, now)
  }

  heldBy(key: string): number {
    return this.held.get(key) ?? 0
  }
}

/**
 * Reads a JSON object body of at most `limit` bytes. Empty body: `{}`. Not JSON, or JSON that is not an
 * object: 400 naming the problem; too large: 413 before reading it all (at once when Content-Length says
 * so); more bytes in flight for this device than the meter allows: 429; client gone: CANCELLED.
 */
export function readJsonObject(
  req: IncomingMessage,
  limit: number,
  meter?: { meter: BodyMeter; key: string },
): Promise<Record<string, unknown>> {
  const declared = Number(req.headers['content-length'])
  if (Number.isFinite(declared) && declared > limit) {
    return Promise.reject(tooLarge(limit))
  }
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = []
    let size = 0
    let done = false
    const finish = (err: SharedLLMError | null, value?: Record<string, unknown>) => {
      if (done) return
      done = true
      if (meter) meter.meter.give(meter.key, size)
      req.off('data', onData)
      req.off('end', onEnd)
      req.off('error', onError)
      req.off('close', onClose)
      if (err) reject(err)
      else resolve(value as Record<string, unknown>)
    }
    const onData = (chunk: Buffer) => {
      if (size + chunk.length > limit) {
        // Stop reading; the error reply then closes the connection.
        req.pause()
        finish(tooLarge(limit))
        return
      }
      if (meter && !meter.meter.take(meter.key, chunk.length, limit)) {
        req.pause()
        finish(
          new SharedLLMError(
            'RATE_LIMITED',
            'this device is sending too many request bodies at once; wait for one to finish',
            { details: { retry_after: 1 } },
          ),
        )
        return
      }
      size += chunk.length
      parts.push(chunk)
    }
    const onEnd = () => {
      try {
        const text = Buffer.concat(parts, size).toString('utf8')
        parts.length = 0
        finish(null, parseObject(text))
      } catch (err) {
        finish(err as SharedLLMError)
      }
    }
    const onError = () =>
      finish(new SharedLLMError('CANCELLED', 'the client went away while sending the body'))
    const onClose = () => {
      if (!req.complete) onError()
    }
    req.on('data', onData)
    req.on('end', onEnd)
    req.on('error', onError)
    req.on('close', onClose)
  })
}

function tooLarge(limit: number): SharedLLMError {
  return new SharedLLMError('PAYLOAD_TOO_LARGE', `the request body is larger than ${limit} bytes`)
}

/**
 * JSON nested deeper than this is refused. The gateway writes every body out again with JSON.stringify,
 * which overflows the stack a few thousand levels down (Go's decoder stops at 10000); no request of the
 * Ollama or OpenAI API nests more than a handful.
 */
export const MAX_JSON_DEPTH = 512

/** Whether `text` (JSON) nests arrays and objects deeper than `max`; strings are skipped. One pass. */
export function jsonTooDeep(text: string, max = MAX_JSON_DEPTH): boolean {
  let depth = 0
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c === 0x22) {
      // A string: to its closing quote, past escapes.
      for (i++; i < text.length; i++) {
        const d = text.charCodeAt(i)
        if (d === 0x5c) i++
        else if (d === 0x22) break
      }
    } else if (c === 0x7b || c === 0x5b) {
      if (++depth > max) return true
    } else if (c === 0x7d || c === 0x5d) depth--
  }
  return false
}

export function parseObject(text: string): Record<string, unknown> {
  if (text.trim() === '') return {}
  if (jsonTooDeep(text)) {
    throw new SharedLLMError('VALIDATION', `the request body nests deeper than ${MAX_JSON_DEPTH} levels`, {
      details: { field: 'body' },
    })
  }
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch (err) {
    throw new SharedLLMError('VALIDATION', `the request body is not valid JSON: ${(err as Error).message}`, {
      details: { field: 'body' },
    })
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new SharedLLMError('VALIDATION', 'the request body must be a JSON object', {
      details: { field: 'body' },
    })
  }
  return value as Record<string, unknown>
}

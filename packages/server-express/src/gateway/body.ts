import { SharedLLMError } from '@sharedllm/core'
import type { IncomingMessage } from 'node:http'

/** Default largest gateway request body: room for a few base64 images in a chat. */
export const DEFAULT_BODY_LIMIT = 16 * 1024 * 1024

/**
 * Reads a JSON object body of at most `limit` bytes. Empty body: `{}`. Not JSON, or JSON that is not an
 * object: 400 naming the problem; too large: 413 before reading it all; client gone: CANCELLED.
 */
export function readJsonObject(req: IncomingMessage, limit: number): Promise<Record<string, unknown>> {
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
      req.off('data', onData)
      req.off('end', onEnd)
      req.off('error', onError)
      req.off('close', onClose)
      if (err) reject(err)
      else resolve(value as Record<string, unknown>)
    }
    const onData = (chunk: Buffer) => {
      size += chunk.length
      if (size > limit) {
        // Stop reading; the error reply then closes the connection.
        req.pause()
        finish(tooLarge(limit))
        return
      }
      parts.push(chunk)
    }
    const onEnd = () => {
      try {
        finish(null, parseObject(Buffer.concat(parts, size).toString('utf8')))
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

export function parseObject(text: string): Record<string, unknown> {
  if (text.trim() === '') return {}
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

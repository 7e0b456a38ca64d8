import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http'
import { SharedLLMError } from '../../errors'
import type { OllamaClient } from '../../ollama/client'
import { unreachable, upstreamFailed } from '../../ollama/errors'
import { sendGatewayError } from './respond'
import type { GatewayApi } from './routes'
import type { ReplyTransform } from '../openai'
import { tapFor, type UsageCounts } from './usage-tap'

export interface ForwardRequest {
  /** Ollama, or a peer host's gateway (pooling). */
  upstream: Pick<OllamaClient, 'open'>
  api: GatewayApi
  method: 'GET' | 'HEAD' | 'POST'
  /** Ollama path, from the route table. */
  path: string
  /** The JSON body to send, already rewritten by the policy. */
  body?: Buffer
  /** Client headers worth passing on (accept, user-agent); never credentials. */
  headers?: OutgoingHttpHeaders
  res: ServerResponse
  /** Aborts the exchange (key revoked, server stopping); its reason, when a SharedLLMError, is the reply. */
  signal: AbortSignal
  /**
   * Deadline for Ollama's response headers (a model load can take a while); 0: none (a non-streaming
   * answer comes with its headers only at the end, however long it takes; a client that leaves still
   * aborts it).
   */
  headersTimeoutMs: number
  /** Rewrites the answer on its way back (the OpenAI translation), given Ollama's status and type. */
  transform?: (status: number, contentType: string | undefined) => ReplyTransform
  /** Called with 1 per streamed content chunk (the fair-share queue charges output as it streams). */
  onOutput?: (tokens: number) => void
  /**
   * Pooling: a failure before anything was sent to the client (refused, unreachable, 5xx, timeout) is not
   * answered; it resolves with `retry` so the caller can try another host.
   */
  failover?: boolean
  /**
   * Pooling: aborted while no answer has come yet (the peer stopped answering its status polls), the attempt
   * fails as a timeout before the first byte, so with `failover` the next host is tried. Ignored once the
   * upstream has answered.
   */
  giveUp?: AbortSignal
}

/** Longest Retry-After passed on from an upstream: a monthly budget's reset (a peer's 429). */
const MAX_RETRY_AFTER_S = 31 * 86_400

/** An upstream's Retry-After (seconds), bounded: 1 s when absent or unreadable, at most 31 days. */
function retryAfterFrom(value: number): number {
  return Number.isFinite(value) && value > 0 ? Math.min(value, MAX_RETRY_AFTER_S) : 1
}

export type ForwardOutcome =
  | 'completed'
  | 'client_closed'
  | 'aborted'
  | 'unavailable'
  | 'upstream_error'
  | 'broken'
  | 'timeout'

export interface ForwardResult {
  /** What the client got (499 when it went away first). */
  status: number
  outcome: ForwardOutcome
  counts?: UsageCounts
  /** Ollama's `{"error"}` inside a 2xx stream. */
  streamError?: string
  /** A pull stream said success. */
  success: boolean
  /** With `failover`: the failure before the first byte, left for the caller to answer. */
  retry?: SharedLLMError
}

/** Response headers of Ollama passed back; hop-by-hop ones and cookies never are. */
const PASS_BACK = [
  'content-type',
  'content-length',
  'cache-control',
  'content-encoding',
  'retry-after',
] as const

function isStreamType(type: string | undefined): boolean {
  return !!type && (type.startsWith('application/x-ndjson') || type.startsWith('text/event-stream'))
}

/**
 * Sends one request to Ollama and pipes its answer to the client chunk by chunk: each upstream chunk is
 * written as it arrives (no buffering, no coalescing; backpressure pauses Ollama's socket instead). A client
 * that goes away aborts the upstream request at once; Ollama unreachable is 503, an Ollama 5xx is 502 with
 * its message. Resolves when the exchange is over, never rejects.
 */
export function forward(f: ForwardRequest): Promise<ForwardResult> {
  const { res } = f
  return new Promise((resolve) => {
    let settled = false
    let upRes: IncomingMessage | undefined
    let timer: NodeJS.Timeout | undefined
    let tapped: ReturnType<typeof tapFor>
    /** The content type the client was sent (an OpenAI answer is SSE though Ollama's was NDJSON). */
    let sentType = ''

    let started: ReturnType<OllamaClient['open']>
    try {
      started = f.upstream.open(f.method, f.path, {
        ...f.headers,
        ...(f.body ? { 'content-type': 'application/json', 'content-length': f.body.length } : {}),
      })
    } catch (err) {
      const e = err instanceof SharedLLMError ? err : unreachable('ollama_host', err)
      sendGatewayError(res, f.api, e)
      resolve({ status: e.status, outcome: 'unavailable', success: false })
      return
    }
    const { req: upReq, target } = started

    const finish = (r: Omit<ForwardResult, 'success' | 'counts' | 'streamError'>) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      res.off('close', onClientClose)
      f.signal.removeEventListener('abort', onAbort)
      f.giveUp?.removeEventListener('abort', onGiveUp)
      resolve({
        ...r,
        success: tapped?.success ?? false,
        ...(tapped?.counts ? { counts: tapped.counts } : {}),
        ...(tapped?.streamError !== undefined ? { streamError: tapped.streamError } : {}),
      })
    }
    const fail = (err: SharedLLMError, outcome: ForwardOutcome) => {
      upReq.destroy()
      upRes?.destroy()
      if (f.failover && !res.headersSent && outcome !== 'broken') {
        finish({ status: err.status, outcome, retry: err })
        return
      }
      // Headers already sent: cutting the connection is the only honest signal left.
      sendGatewayError(res, f.api, err)
      finish({ status: outcome === 'broken' ? 502 : err.status, outcome })
    }
    const onGiveUp = () => {
      if (upRes || settled) return
      const why = f.giveUp?.reason instanceof Error ? f.giveUp.reason.message : 'it stopped answering'
      fail(
        new SharedLLMError('TIMEOUT', `${target.base} gave no answer to ${f.method} ${f.path}: ${why}`),
        'timeout',
      )
    }
    const onClientClose = () => {
      if (res.writableFinished) return
      upReq.destroy()
      upRes?.destroy()
      finish({ status: 499, outcome: 'client_closed' })
    }
    const onAbort = () => {
      const reason = f.signal.reason
      const err =
        reason instanceof SharedLLMError
          ? reason
          : new SharedLLMError('CANCELLED', 'the request was cancelled by the host')
      upReq.destroy()
      upRes?.destroy()
      const status = res.headersSent ? 499 : err.status
      const type = sentType
      if (res.headersSent && !res.destroyed && err.details?.reason === 'reclaimed' && isStreamType(type)) {
        // The owner took the GPU back mid-answer: say so in the stream, the way Ollama reports a
        // failure inside a 200 stream (an `{"error"}` line; an error event on the OpenAI routes).
        res.end(
          type.startsWith('text/event-stream')
            ? `data: ${JSON.stringify({ error: { message: err.message, type: 'api_error', code: err.code } })}\n\n`
            : `${JSON.stringify({ error: err.message })}\n`,
        )
      } else sendGatewayError(res, f.api, err)
      finish({ status, outcome: 'aborted' })
    }
    if (f.signal.aborted) {
      onAbort()
      return
    }
    if (res.destroyed || res.socket?.destroyed) {
      // The client left while we were deciding; Ollama never hears of it.
      upReq.destroy()
      finish({ status: 499, outcome: 'client_closed' })
      return
    }
    res.on('close', onClientClose)
    f.signal.addEventListener('abort', onAbort, { once: true })
    if (f.giveUp?.aborted) {
      onGiveUp()
      return
    }
    f.giveUp?.addEventListener('abort', onGiveUp, { once: true })
    if (f.headersTimeoutMs > 0)
      timer = setTimeout(() => {
        fail(
          new SharedLLMError(
            'TIMEOUT',
            `Ollama at ${target.base} did not start answering ${f.method} ${f.path} within ${f.headersTimeoutMs} ms`,
          ),
          'timeout',
        )
      }, f.headersTimeoutMs)

    upReq.on('error', (err) => {
      if (settled) return
      if (upRes) fail(unreachable(target.base, err), 'broken')
      else fail(unreachable(target.base, err), 'unavailable')
    })

    upReq.on('response', (r: IncomingMessage) => {
      upRes = r
      clearTimeout(timer)
      if (settled) {
        r.destroy()
        return
      }
      const status = r.statusCode ?? 502
      if (status === 503) {
        // Ollama's queue is full (server/sched.go ErrMaxQueue) or it is loading: busy, try again.
        const retry = Number(r.headers['retry-after'])
        readSmall(r, 64 * 1024).then(
          (text) => {
            if (settled) return
            const e = upstreamFailed(status, text)
            fail(
              new SharedLLMError(
                'UPSTREAM_UNAVAILABLE',
                e.message.replace(/^Ollama failed \(503\)/, 'Ollama is busy (503)'),
                {
                  details: {
                    upstream_status: 503,
                    retry_after: retryAfterFrom(retry),
                  },
                },
              ),
              'upstream_error',
            )
          },
          (err) => {
            if (!settled) fail(unreachable(target.base, err), 'broken')
          },
        )
        return
      }
      if (f.failover && status === 429) {
        // A peer's 429 (pooling): its limits for this host (rate, queue, budget) are reached; another host may
        // have room. The peer is not failing: the caller does not count it on its breaker.
        const retry = Number(r.headers['retry-after'])
        readSmall(r, 64 * 1024).then(
          (text) => {
            if (settled) return
            const said = upstreamFailed(status, text).message.replace(/^Ollama failed \(429\): /, '')
            fail(
              new SharedLLMError('RATE_LIMITED', `at its limit for this host (429): ${said}`, {
                details: {
                  upstream_status: 429,
                  retry_after: retryAfterFrom(retry),
                },
              }),
              'upstream_error',
            )
          },
          (err) => {
            if (!settled) fail(unreachable(target.base, err), 'broken')
          },
        )
        return
      }
      // A peer's 401 (pooling) means our key there is dead: that host failed, not the client's request.
      if (status >= 500 || (f.failover && status === 401)) {
        readSmall(r, 64 * 1024).then(
          (text) => {
            if (!settled) fail(upstreamFailed(status, text), 'upstream_error')
          },
          (err) => {
            if (!settled) fail(unreachable(target.base, err), 'broken')
          },
        )
        return
      }
      const upstreamType = r.headers['content-type']
      const transform = f.transform?.(status, upstreamType)
      const type = transform ? transform.contentType : upstreamType
      const streaming = isStreamType(type)
      // Usage (and the queue's output charge) is read from Ollama's own answer, before any rewriting.
      tapped = tapFor(upstreamType, { onOutput: f.onOutput })
      const strip = !!transform
      const headers: OutgoingHttpHeaders = {}
      for (const name of PASS_BACK) {
        const v = r.headers[name]
        if (v !== undefined && !(strip && name === 'content-length')) headers[name] = v
      }
      if (transform) {
        headers['content-type'] = transform.contentType
        delete headers['content-encoding']
      }
      if (streaming) {
        headers['cache-control'] = 'no-cache'
        headers['x-accel-buffering'] = 'no'
      }
      sentType = String(headers['content-type'] ?? '')
      res.writeHead(status, headers)
      if (streaming) res.flushHeaders()

      const tap = tapped
      r.on('data', (chunk: Buffer) => {
        const tappedOut = tap ? tap.push(chunk) : chunk
        const out = transform ? transform.push(tappedOut) : tappedOut
        if (out.length > 0 && !res.write(out)) {
          r.pause()
          res.once('drain', () => r.resume())
        }
      })
      r.on('end', () => {
        if (settled) return
        let rest = tap?.end()
        if (transform) {
          const pushed = rest && rest.length > 0 ? transform.push(rest) : Buffer.alloc(0)
          rest = Buffer.concat([pushed, transform.end()])
        }
        if (rest && rest.length > 0) res.write(rest)
        res.end()
        finish({ status: tapped?.streamError !== undefined ? 502 : status, outcome: 'completed' })
      })
      r.on('error', (err) => {
        if (!settled) fail(unreachable(target.base, err), 'broken')
      })
      r.on('close', () => {
        if (!settled && !r.complete)
          fail(unreachable(target.base, new Error('connection closed mid-answer')), 'broken')
      })
    })

    upReq.end(f.body)
  })
}

function readSmall(r: IncomingMessage, limit: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = []
    let size = 0
    r.on('data', (c: Buffer) => {
      if (size < limit) parts.push(c)
      size += c.length
    })
    r.on('end', () => resolve(Buffer.concat(parts).toString('utf8').slice(0, limit)))
    r.on('error', reject)
  })
}

import { SharedLLMError } from '@sharedllm/core'
import http, { type ClientRequest, type IncomingMessage, type OutgoingHttpHeaders } from 'node:http'
import https from 'node:https'

export interface UpstreamTarget {
  /** `http://127.0.0.1:11434`, for messages. */
  base: string
  protocol: 'http:' | 'https:'
  hostname: string
  port: number
  /** The Host header Ollama expects (its own address; Ollama checks it like we do). */
  host: string
}

/**
 * Where Ollama is (the `ollama_host` setting, read per request so a change applies at once) and kept-alive
 * connections to it: a fresh TCP connection per request would cost more than the whole gateway does.
 */
export class Upstream {
  private readonly httpAgent = new http.Agent({ keepAlive: true, maxFreeSockets: 64 })
  private readonly httpsAgent = new https.Agent({ keepAlive: true, maxFreeSockets: 64 })
  private cache: { raw: string; target: UpstreamTarget } | undefined

  constructor(private readonly hostSetting: () => string) {}

  target(): UpstreamTarget {
    const raw = this.hostSetting()
    if (this.cache?.raw === raw) return this.cache.target
    let url: URL
    try {
      url = new URL(raw)
    } catch {
      throw new SharedLLMError('UPSTREAM_UNAVAILABLE', `ollama_host ${JSON.stringify(raw)} is not a URL`)
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new SharedLLMError('UPSTREAM_UNAVAILABLE', `ollama_host ${raw} must be an http(s) URL`)
    }
    const target: UpstreamTarget = {
      base: url.origin,
      protocol: url.protocol,
      hostname: url.hostname.replace(/^\[|\]$/g, ''),
      port: Number(url.port) || (url.protocol === 'https:' ? 443 : 80),
      host: url.host,
    }
    this.cache = { raw, target }
    return target
  }

  /** Starts a request to `path` (a constant from the route table) on Ollama. */
  request(
    method: string,
    path: string,
    headers: OutgoingHttpHeaders,
  ): { req: ClientRequest; target: UpstreamTarget } {
    const target = this.target()
    const mod = target.protocol === 'https:' ? https : http
    const req = mod.request({
      protocol: target.protocol,
      hostname: target.hostname,
      port: target.port,
      method,
      path,
      headers: { ...headers, host: target.host },
      agent: target.protocol === 'https:' ? this.httpsAgent : this.httpAgent,
    })
    req.setNoDelay(true)
    return { req, target }
  }

  /** GETs a small JSON document from Ollama (lists); 5xx and unreachable become SharedLLMErrors. */
  getJson(path: string, timeoutMs: number): Promise<{ status: number; body: unknown; text: string }> {
    return new Promise((resolve, reject) => {
      let req: ClientRequest
      let target: UpstreamTarget
      try {
        ;({ req, target } = this.request('GET', path, { accept: 'application/json' }))
      } catch (err) {
        reject(err)
        return
      }
      const timer = setTimeout(() => {
        req.destroy()
        reject(
          new SharedLLMError(
            'TIMEOUT',
            `Ollama at ${target.base} did not answer GET ${path} within ${timeoutMs} ms`,
          ),
        )
      }, timeoutMs)
      req.on('error', (err) => {
        clearTimeout(timer)
        reject(unreachable(target.base, err))
      })
      req.on('response', (res: IncomingMessage) => {
        const parts: Buffer[] = []
        res.on('data', (c: Buffer) => parts.push(c))
        res.on('error', (err) => {
          clearTimeout(timer)
          reject(unreachable(target.base, err))
        })
        res.on('end', () => {
          clearTimeout(timer)
          const text = Buffer.concat(parts).toString('utf8')
          const status = res.statusCode ?? 502
          if (status >= 500) {
            reject(upstreamFailed(status, text))
            return
          }
          let body: unknown
          try {
            body = JSON.parse(text)
          } catch {
            body = undefined
          }
          resolve({ status, body, text })
        })
      })
      req.end()
    })
  }

  close(): void {
    this.httpAgent.destroy()
    this.httpsAgent.destroy()
  }
}

/** Ollama could not be reached (or the connection broke before it answered). */
export function unreachable(base: string, err: unknown): SharedLLMError {
  const code = (err as { code?: unknown } | undefined)?.code
  const why =
    code === 'ECONNREFUSED'
      ? 'connection refused'
      : typeof code === 'string'
        ? code
        : err instanceof Error
          ? err.message
          : String(err)
  return new SharedLLMError(
    'UPSTREAM_UNAVAILABLE',
    `Ollama is not running at ${base} (${why}); the host owner can start it with \`ollama serve\` or turn on auto_start_ollama`,
    { cause: err, details: typeof code === 'string' ? { errno: code } : undefined },
  )
}

/** An Ollama 5xx, passed on as 502 with Ollama's own message. */
export function upstreamFailed(status: number, text: string): SharedLLMError {
  let message = text.trim()
  try {
    const parsed = JSON.parse(text) as { error?: unknown }
    if (typeof parsed.error === 'string') message = parsed.error
    else if (parsed.error && typeof (parsed.error as { message?: unknown }).message === 'string') {
      message = (parsed.error as { message: string }).message
    }
  } catch {
    // plain text
  }
  return new SharedLLMError(
    'UPSTREAM_ERROR',
    `Ollama failed (${status}): ${message.slice(0, 500) || 'no message'}`,
    {
      details: { upstream_status: status },
    },
  )
}

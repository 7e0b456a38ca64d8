import http, { type ClientRequest, type IncomingMessage, type OutgoingHttpHeaders } from 'node:http'
import https from 'node:https'
import type { z } from 'zod'
import { SharedLLMError } from '../errors'
import type { ModelInfo, RunningModel } from '../protocol/types'
import { connectionError, httpError, unreachable, upstreamFailed } from './errors'
import { validateModelName } from './names'
import { readNdjson } from './ndjson'
import {
  pullLineSchema,
  type RawPullLine,
  runningSchema,
  type ShowResponse,
  showSchema,
  tagsSchema,
  versionSchema,
} from './wire'

export interface OllamaClientOptions {
  /** Base URL of Ollama, e.g. `http://127.0.0.1:11434`; a function is read on every call (settings change). */
  host: string | (() => string)
  /** Deadline for non-streaming calls and for the headers of streaming ones. @default 30000 */
  timeoutMs?: number
}

export interface CallOptions {
  signal?: AbortSignal
  /** Overrides the client's timeoutMs for this call (health checks use a short one). */
  timeoutMs?: number
}

export interface PassthroughInit {
  method: string
  headers?: Record<string, string>
  body?: RequestInit['body']
  signal?: AbortSignal
}

/** Where Ollama is, for the node:http transport the gateway forwards through. */
export interface OllamaTarget {
  /** `http://127.0.0.1:11434`, for messages. */
  base: string
  protocol: 'http:' | 'https:'
  hostname: string
  port: number
  /** The Host header Ollama expects (its own address; Ollama checks it like we do). */
  host: string
}

/** Largest non-streaming JSON body read from Ollama (`/api/show` with verbose tensors is the big one). */
const MAX_JSON_BODY = 32 * 1024 * 1024

/**
 * The one client for Ollama's HTTP API: typed calls for the catalog, the manager and pulls (every failure
 * a SharedLLMError), and the kept-alive node:http transport the gateway forwards through (a fresh TCP
 * connection per request would cost more than the whole gateway does).
 */
export class OllamaClient {
  private readonly hostOption: string | (() => string)
  private readonly timeoutMs: number
  private readonly httpAgent = new http.Agent({ keepAlive: true, maxFreeSockets: 64 })
  private readonly httpsAgent = new https.Agent({ keepAlive: true, maxFreeSockets: 64 })
  private targetCache: { raw: string; target: OllamaTarget } | undefined

  constructor(o: OllamaClientOptions) {
    this.hostOption = o.host
    this.timeoutMs = o.timeoutMs ?? 30_000
  }

  /** The base URL in use now, without a trailing slash. */
  get host(): string {
    const raw = typeof this.hostOption === 'function' ? this.hostOption() : this.hostOption
    return raw.replace(/\/+$/, '')
  }

  async version(opts: CallOptions = {}): Promise<string> {
    return (await this.json('GET', '/api/version', versionSchema, undefined, opts)).version
  }

  async tags(opts: CallOptions = {}): Promise<ModelInfo[]> {
    return (await this.json('GET', '/api/tags', tagsSchema, undefined, opts)).models
  }

  async ps(opts: CallOptions = {}): Promise<RunningModel[]> {
    return (await this.json('GET', '/api/ps', runningSchema, undefined, opts)).models
  }

  async show(name: string, opts: CallOptions = {}): Promise<ShowResponse> {
    const model = validateModelName(name)
    return this.json('POST', '/api/show', showSchema, { model }, opts)
  }

  async delete(name: string, opts: CallOptions = {}): Promise<void> {
    const model = validateModelName(name)
    const res = await this.send('DELETE', '/api/delete', { model }, opts)
    await res.body?.cancel()
  }

  /** Loads nothing and unloads `name` now (`keep_alive: 0`), as `ollama stop` does. */
  async unload(name: string, opts: CallOptions = {}): Promise<void> {
    const model = validateModelName(name)
    const res = await this.send('POST', '/api/generate', { model, keep_alive: 0 }, opts)
    await res.body?.cancel()
  }

  /**
   * Streams `/api/pull`. The name is validated before anything is sent (this throws synchronously). An
   * `{"error": …}` line inside the 200 stream ends the iteration with PULL_FAILED carrying Ollama's message
   * in `details.upstream`; aborting `signal` ends it with CANCELLED.
   */
  pull(name: string, signal?: AbortSignal): AsyncIterable<RawPullLine> {
    const model = validateModelName(name)
    return this.pullLines(model, signal)
  }

  private async *pullLines(model: string, signal?: AbortSignal): AsyncGenerator<RawPullLine> {
    const where = { host: this.host, method: 'POST', path: '/api/pull' }
    const res = await this.send(
      'POST',
      '/api/pull',
      { model, stream: true },
      { signal, timeoutMs: this.timeoutMs },
    )
    if (!res.body) throw new SharedLLMError('PULL_FAILED', `Ollama sent no body for the pull of ${model}`)
    try {
      for await (const raw of readNdjson(res.body)) {
        const parsed = pullLineSchema.safeParse(raw)
        if (!parsed.success) {
          throw new SharedLLMError(
            'PULL_FAILED',
            `Ollama sent an unexpected pull line: ${JSON.stringify(raw)}`,
          )
        }
        const line = parsed.data
        if (line.error !== undefined) {
          throw new SharedLLMError('PULL_FAILED', `Pulling ${model} failed: ${line.error}`, {
            details: { model, upstream: line.error },
          })
        }
        yield {
          status: line.status ?? '',
          ...(line.digest !== undefined ? { digest: line.digest } : {}),
          ...(line.total !== undefined ? { total: line.total } : {}),
          ...(line.completed !== undefined ? { completed: line.completed } : {}),
        }
      }
    } catch (err) {
      if (err instanceof SharedLLMError) throw err
      throw connectionError(err, where, { cancelled: signal?.aborted === true })
    }
  }

  /**
   * Generic passthrough for the gateway: sends the request to Ollama and returns its Response unbuffered,
   * whatever its status (the body streams). Only failing to reach Ollama throws: UPSTREAM_UNAVAILABLE, or
   * CANCELLED when `signal` aborted.
   */
  async request(path: string, init: PassthroughInit): Promise<Response> {
    const url = this.url(path)
    try {
      return await fetch(url, {
        method: init.method,
        headers: init.headers,
        body: init.body ?? null,
        signal: init.signal,
        redirect: 'manual',
        // Node's fetch needs this to send a streaming request body.
        ...(init.body instanceof ReadableStream ? { duplex: 'half' } : {}),
      } as RequestInit)
    } catch (err) {
      throw connectionError(
        err,
        { host: this.host, method: init.method, path },
        { cancelled: init.signal?.aborted },
      )
    }
  }

  /** Where Ollama is now (the `ollama_host` setting is read per call, so a change applies at once). */
  target(): OllamaTarget {
    const raw = this.host
    if (this.targetCache?.raw === raw) return this.targetCache.target
    let url: URL
    try {
      url = new URL(raw)
    } catch {
      throw new SharedLLMError('UPSTREAM_UNAVAILABLE', `ollama_host ${JSON.stringify(raw)} is not a URL`)
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new SharedLLMError('UPSTREAM_UNAVAILABLE', `ollama_host ${raw} must be an http(s) URL`)
    }
    const target: OllamaTarget = {
      base: url.origin,
      protocol: url.protocol,
      hostname: url.hostname.replace(/^\[|\]$/g, ''),
      port: Number(url.port) || (url.protocol === 'https:' ? 443 : 80),
      host: url.host,
    }
    this.targetCache = { raw, target }
    return target
  }

  /** Starts a raw request to `path` (a constant from the gateway's route table) on a kept-alive socket. */
  open(
    method: string,
    path: string,
    headers: OutgoingHttpHeaders,
  ): { req: ClientRequest; target: OllamaTarget } {
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

  /**
   * GETs a small JSON document as Ollama wrote it (the gateway filters lists without reshaping them); 5xx
   * and unreachable become SharedLLMErrors, a 4xx comes back with its status.
   */
  document(path: string, timeoutMs: number): Promise<{ status: number; body: unknown; text: string }> {
    return new Promise((resolve, reject) => {
      let req: ClientRequest
      let target: OllamaTarget
      try {
        ;({ req, target } = this.open('GET', path, { accept: 'application/json' }))
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
        let size = 0
        res.on('data', (c: Buffer) => {
          size += c.length
          if (size > MAX_JSON_BODY) {
            res.destroy(new Error(`more than ${MAX_JSON_BODY} bytes`))
            return
          }
          parts.push(c)
        })
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

  /** Closes the kept-alive sockets (the hub calls it when it stops). */
  close(): void {
    this.httpAgent.destroy()
    this.httpsAgent.destroy()
  }

  private url(path: string): string {
    if (!path.startsWith('/') || path.startsWith('//')) {
      throw new SharedLLMError(
        'VALIDATION',
        `Ollama path must start with a single "/": ${JSON.stringify(path)}`,
      )
    }
    const host = this.host
    let base: URL
    try {
      base = new URL(host)
    } catch {
      throw new SharedLLMError('VALIDATION', `ollama_host ${JSON.stringify(host)} is not a URL`)
    }
    const url = new URL(host + path)
    // A path can never move the request to another host.
    if (url.origin !== base.origin) throw new SharedLLMError('VALIDATION', `Invalid Ollama path ${path}`)
    return url.href
  }

  /** Sends a request with a deadline on the headers; returns a 2xx Response or throws the mapped error. */
  private async send(method: string, path: string, body: unknown, opts: CallOptions): Promise<Response> {
    const where = { host: this.host, method, path }
    const url = this.url(path)
    const timeoutMs = opts.timeoutMs ?? this.timeoutMs
    const timeout = new AbortController()
    const timer = setTimeout(() => timeout.abort(), timeoutMs)
    const signal = opts.signal ? AbortSignal.any([opts.signal, timeout.signal]) : timeout.signal
    let res: Response
    try {
      res = await fetch(url, {
        method,
        signal,
        ...(body === undefined
          ? {}
          : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }),
      })
    } catch (err) {
      throw connectionError(err, where, {
        cancelled: opts.signal?.aborted === true,
        ...(timeout.signal.aborted ? { timedOutMs: timeoutMs } : {}),
      })
    } finally {
      clearTimeout(timer)
    }
    if (!res.ok) throw httpError(res.status, await readText(res, 64 * 1024).catch(() => ''), where)
    return res
  }

  private async json<S extends z.ZodType>(
    method: string,
    path: string,
    schema: S,
    body: unknown,
    opts: CallOptions,
  ): Promise<z.infer<S>> {
    const where = { host: this.host, method, path }
    const timeoutMs = opts.timeoutMs ?? this.timeoutMs
    // The deadline covers the body too: a server that sends headers then stalls must not hang a health check.
    const timeout = new AbortController()
    const timer = setTimeout(() => timeout.abort(), timeoutMs)
    const signal = opts.signal ? AbortSignal.any([opts.signal, timeout.signal]) : timeout.signal
    try {
      const res = await this.send(method, path, body, { signal, timeoutMs: timeoutMs + 1000 })
      let text: string
      try {
        text = await readText(res, MAX_JSON_BODY)
      } catch (err) {
        throw connectionError(err, where, {
          cancelled: opts.signal?.aborted === true,
          ...(timeout.signal.aborted ? { timedOutMs: timeoutMs } : {}),
        })
      }
      let parsed: unknown
      try {
        parsed = JSON.parse(text)
      } catch (err) {
        throw new SharedLLMError('UPSTREAM_ERROR', `Ollama answered ${method} ${path} with non-JSON text`, {
          cause: err,
          details: { path, upstream: text.slice(0, 200) },
        })
      }
      const result = schema.safeParse(parsed)
      if (!result.success) {
        const issue = result.error.issues[0]
        throw new SharedLLMError(
          'UPSTREAM_ERROR',
          `Ollama answered ${method} ${path} with an unexpected shape at ${issue?.path.join('.') || '(root)'}: ${issue?.message}`,
          { details: { path } },
        )
      }
      return result.data
    } catch (err) {
      if (err instanceof SharedLLMError && err.code === 'CANCELLED' && timeout.signal.aborted) {
        throw new SharedLLMError(
          'TIMEOUT',
          `Ollama at ${where.host} did not answer ${method} ${path} within ${timeoutMs} ms`,
          {
            cause: err,
            details: { host: where.host, path },
          },
        )
      }
      throw err
    } finally {
      clearTimeout(timer)
    }
  }
}

async function readText(res: Response, max: number): Promise<string> {
  if (!res.body) return ''
  const reader = res.body.getReader()
  const decoder = new TextDecoder()
  let text = ''
  let size = 0
  for (;;) {
    const { done, value } = await reader.read()
    if (done) break
    size += value.byteLength
    if (size > max) {
      await reader.cancel()
      throw new SharedLLMError('UPSTREAM_ERROR', `Ollama sent more than ${max} bytes`)
    }
    text += decoder.decode(value, { stream: true })
  }
  return text + decoder.decode()
}

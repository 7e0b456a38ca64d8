import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http'
import type { Principal } from '../../access/access'
import { SharedLLMError } from '../../errors'
import type { Hub } from '../../hub'
import type { PullProgress } from '../../protocol/types'
import { canonicalModelName, resolveModelName } from '../../ollama/names'
import { SharedCache } from '../cache'
import { replyTransform } from '../openai'
import type { Admission } from '../policy'
import { type QueuedRun, QueueStage } from '../queue'
import { isPlainObject } from '../request-body'
import { authenticateRequest, checkCookieOrigin, unauthorized } from './auth'
import { BodyMeter, readJsonObject } from './body'
import { InFlight } from './inflight'
import { filterList } from './listing'
import { handleMetrics } from './metrics'
import { type ForwardResult, forward } from './proxy'
import { asGatewayError, sendGatewayError, sendJson } from './respond'
import { apiOf, type GatewayApi, type GatewayRoute, isGatewayPath, resolveRoute } from './routes'

export interface GatewayOptions {
  /** A ceiling on every role's body limit, in bytes. @default none (each role's `max_body_bytes`) */
  bodyLimit?: number
  /**
   * Request-body bytes one device may have in memory at once, over all its requests (never less than its
   * role's per-request limit). @default 16 MiB
   */
  bodyBytesPerDevice?: number
  /** How long Ollama may take to start answering a forwarded request (model loads are slow). @default 300000 */
  headersTimeoutMs?: number
  /** Deadline for the model lists the gateway reads and filters. @default 10000 */
  listTimeoutMs?: number
  /** How long Ollama's lists (tags, ps, /v1/models) are kept; one refresh at a time. @default 5000 */
  listCacheMs?: number
}

/** A plain `node:http` request handler for `/ollama/*`, `/v1/*` and `/metrics`. */
export interface GatewayHandler {
  (req: IncomingMessage, res: ServerResponse): void
  /** Whether the gateway answers this path (everything under `/ollama` and `/v1`, and `/metrics`). */
  handles(path: string): boolean
  /** Open exchanges per device (for tests and the owner's view). */
  readonly inFlight: InFlight
  /** Ends every open exchange and stops listening to the hub. */
  close(): void
}

type RequestWithBody = IncomingMessage & { body?: unknown }
type ListDoc = { status: number; body: unknown; text: string }

const NEVER = new AbortController().signal

/** Client headers passed to Ollama; everything else (cookie, authorization, origin, hop-by-hop) is not. */
function passHeaders(req: IncomingMessage): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {}
  if (req.headers.accept) out.accept = req.headers.accept
  if (req.headers['user-agent']) out['user-agent'] = req.headers['user-agent']
  return out
}

/** The raw path of a request URL (no query): routes match it exactly, undecoded. */
function pathOf(url: string | undefined): string {
  const raw = url ?? '/'
  const q = raw.indexOf('?')
  return q === -1 ? raw : raw.slice(0, q)
}

/**
 * The gateway: `createGatewayHandler(hub)` returns a `node:http` handler that needs no framework. For each
 * request, in this order: authenticate (device key, admin secret, or the owner's session cookie from a
 * same-origin page) → route (an exact allowlist) → `hub.policy.admit` (rate, slot, bounded body, the
 * outgoing body, model list, fit, clamps) → forward to Ollama chunk by chunk → record usage. Pulls go
 * through the hub's model manager. Every failure is an answer in the route's API shape; it never throws.
 */
export function createGatewayHandler(hub: Hub, options: GatewayOptions = {}): GatewayHandler {
  const gateway = new Gateway(hub, options)
  const handler = ((req: IncomingMessage, res: ServerResponse) => {
    void gateway.handle(req, res)
  }) as GatewayHandler
  return Object.assign(handler, {
    handles: isGatewayPath,
    inFlight: gateway.inFlight,
    close: () => gateway.close(),
  })
}

class Gateway {
  readonly inFlight = new InFlight()
  private readonly meter: BodyMeter
  private readonly headersTimeoutMs: number
  private readonly listTimeoutMs: number
  private readonly lists = new Map<string, SharedCache<ListDoc>>()
  private readonly off: Array<() => void> = []
  private readonly queue: QueueStage

  constructor(
    private readonly hub: Hub,
    private readonly options: GatewayOptions,
  ) {
    this.meter = new BodyMeter(options.bodyBytesPerDevice ?? 16 * 1024 * 1024)
    this.headersTimeoutMs = options.headersTimeoutMs ?? 300_000
    this.listTimeoutMs = options.listTimeoutMs ?? 10_000
    this.queue = new QueueStage(hub)
    for (const path of ['/api/tags', '/api/ps', '/v1/models']) {
      this.lists.set(
        path,
        new SharedCache(
          () => hub.ollama.client.document(path, this.listTimeoutMs),
          options.listCacheMs ?? 5000,
        ),
      )
    }
    const models = () => {
      this.lists.get('/api/tags')?.invalidate()
      this.lists.get('/v1/models')?.invalidate()
    }
    this.off.push(
      hub.on('device_keys_revoked', ({ device_id }) => {
        this.inFlight.abortDevice(device_id, unauthorized())
      }),
      hub.on('model_pulled', models),
      hub.on('model_deleted', models),
      hub.on('models_changed', models),
      hub.on('models_running', () => this.lists.get('/api/ps')?.invalidate()),
    )
  }

  close(): void {
    for (const off of this.off.splice(0)) off()
    this.queue.close()
  }

  /** Handles one request. Never throws; every failure is an answer. */
  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = pathOf(req.url)
    if (path === '/metrics') return handleMetrics(this.hub, req, res)
    const api = apiOf(path)
    let flight: { signal: AbortSignal; close: () => void } | undefined
    let admission: Admission | undefined
    let run: QueuedRun | undefined
    // Known once authenticated and routed: a refused inference request is counted under its caller.
    let principal: Principal | undefined
    let route: GatewayRoute | undefined
    const started = performance.now()
    try {
      const auth = await authenticateRequest(this.hub, req)
      if (!auth) throw unauthorized()
      checkCookieOrigin(req, auth)
      principal = auth.principal
      const resolved = resolveRoute(req.method ?? '', path)
      if (!resolved.ok) {
        if (resolved.status === 405) res.setHeader('Allow', resolved.allow)
        throw resolved.status === 405
          ? new SharedLLMError(
              'METHOD_NOT_ALLOWED',
              `${req.method} is not allowed on ${path}; use ${resolved.allow}`,
            )
          : new SharedLLMError('NOT_FOUND', `no gateway route ${path.slice(0, 200)}`)
      }
      route = resolved.route
      flight = principal.kind === 'device' ? this.inFlight.open(principal.device.id) : undefined
      admission = await this.hub.policy.admit(principal, route, (limit, deviceId) =>
        this.body(req, limit, deviceId),
      )
      const signal = flight?.signal ?? NEVER
      switch (route.kind) {
        case 'root':
          // server/routes.go: GET and HEAD "/" answer "Ollama is running" (the Go client's heartbeat).
          res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8', 'Cache-Control': 'no-store' })
          res.end('Ollama is running')
          return
        case 'retrieve':
          return await this.retrieve(route, principal, res)
        case 'tags':
        case 'models':
        case 'ps':
          return await this.list(route, principal, res)
        case 'version':
          await forward({
            upstream: this.hub.ollama.client,
            api: route.api,
            // HEAD is answered from a GET (node sends no body for HEAD); only the table's methods go upstream.
            method: 'GET',
            path: route.upstream,
            headers: passHeaders(req),
            res,
            signal,
            headersTimeoutMs: this.listTimeoutMs,
          })
          return
        case 'pull':
        case 'infer':
        case 'show': {
          // pool: begin — a paired peer may serve it (hub.pool.serve answers, or returns undefined: here).
          // The OpenAI routes were sent as native ones: their answers are rewritten back (../openai.ts).
          const reply = admission.reply
          const transform = reply
            ? (status: number, type: string | undefined) => replyTransform(reply, status, type)
            : undefined
          const routed =
            route.kind !== 'pull' && this.hub.pool
              ? await this.hub.pool.serve({
                  principal,
                  route,
                  admission,
                  req,
                  res,
                  signal,
                  headersTimeoutMs: answersAtTheEnd(route, admission) ? 0 : this.headersTimeoutMs,
                  headers: passHeaders(req),
                  ...(transform ? { transform } : {}),
                })
              : undefined
          // pool: end
          // The fair-share queue: an inference request served here waits for its turn at Ollama (a routed one
          // waits in the peer's queue instead).
          if (!routed) run = await this.queue.enter(principal, route, admission, signal, res)
          const result =
            route.kind === 'pull'
              ? await this.pull(api, admission, res, signal)
              : (routed ??
                (await forward({
                  upstream: this.hub.ollama.client,
                  api: route.api,
                  method: 'POST',
                  path: route.upstream,
                  body: Buffer.from(JSON.stringify(admission.outgoing)),
                  headers: passHeaders(req),
                  res,
                  signal: run?.signal ?? signal,
                  // A non-streaming answer has its headers only at the end: no deadline but the client's own.
                  headersTimeoutMs: answersAtTheEnd(route, admission) ? 0 : this.headersTimeoutMs,
                  ...(run ? { onOutput: run.output } : {}),
                  ...(transform ? { transform } : {}),
                })))
          run?.end(result)
          this.queue.record(
            principal,
            route,
            admission,
            result,
            performance.now() - started,
            run,
            routed?.via ?? undefined,
          )
          return
        }
      }
    } catch (err) {
      const e = asGatewayError(err)
      if (e.code === 'INTERNAL') this.hub.log.error({ err, path }, 'gateway request failed')
      if (principal && route?.kind === 'infer') {
        this.queue.recordRefusal(principal, route, admission, e, performance.now() - started)
      }
      // A refused request whose body was never read: close rather than drain whatever the client still sends.
      if (!req.complete && !res.headersSent) res.setHeader('Connection', 'close')
      sendGatewayError(res, api, e)
    } finally {
      run?.end()
      admission?.release()
      flight?.close()
    }
  }

  private body(
    req: RequestWithBody,
    roleLimit: number,
    deviceId: string | null,
  ): Promise<Record<string, unknown>> {
    // Another body parser got there first (an app-wide express.json): use what it read.
    if (req.readableEnded) return Promise.resolve(isPlainObject(req.body) ? req.body : {})
    const limit = Math.min(roleLimit, this.options.bodyLimit ?? Number.POSITIVE_INFINITY)
    return readJsonObject(req, limit, { meter: this.meter, key: deviceId ?? 'admin' })
  }

  /**
   * `GET /v1/models/{model}` (openai's models.retrieve): openai.ToModel from the model list, for a model
   * the caller may use; anything else is Ollama's 404 `model 'x' not found`.
   */
  private async retrieve(route: GatewayRoute, principal: Principal, res: ServerResponse): Promise<void> {
    const name = route.param ?? ''
    const missing = () =>
      new SharedLLMError('MODEL_NOT_FOUND', `model '${name.slice(0, 200)}' not found`, {
        details: { model: name.slice(0, 200) },
      })
    let resolved: ReturnType<typeof resolveModelName>
    try {
      resolved = resolveModelName(name)
    } catch {
      throw missing()
    }
    const cache = this.lists.get('/api/tags') as SharedCache<ListDoc>
    const [upstream, keep] = await Promise.all([
      cache.get(),
      this.hub.policy.listFilter(principal, { ...route, kind: 'tags' }),
    ])
    const models =
      isPlainObject(upstream.body) && Array.isArray(upstream.body.models) ? upstream.body.models : []
    const entry = models.find(
      (m): m is Record<string, unknown> =>
        isPlainObject(m) &&
        typeof m.name === 'string' &&
        canonicalModelName(m.name) === resolved.display &&
        keep(m),
    )
    if (!entry) throw missing()
    const modified = typeof entry.modified_at === 'string' ? Date.parse(entry.modified_at) : Number.NaN
    sendJson(res, 200, {
      id: name,
      object: 'model',
      created: Number.isFinite(modified) ? Math.floor(modified / 1000) : 0,
      owned_by: resolved.namespace,
    })
  }

  /** tags, ps and /v1/models: Ollama's list (cached briefly, one refresh at a time), filtered to the caller. */
  private async list(route: GatewayRoute, principal: Principal, res: ServerResponse): Promise<void> {
    const cache = this.lists.get(route.upstream) as SharedCache<ListDoc>
    const listKey = route.kind === 'models' ? 'data' : 'models'
    const [upstream, keep] = await Promise.all([cache.get(), this.hub.policy.listFilter(principal, route)])
    if (upstream.status !== 200 || !isPlainObject(upstream.body)) {
      cache.invalidate()
      // Ollama's own 4xx answer (or a body we cannot read) is passed on as it came.
      sendJson(
        res,
        upstream.status === 200 ? 502 : upstream.status,
        upstream.body ?? { error: upstream.text },
      )
      return
    }
    const doc = filterList(upstream.body, listKey, keep)
    // pool: the models of online peers the caller may use, marked with their host.
    const pooled =
      this.hub.pool && (route.kind === 'tags' || route.kind === 'models')
        ? this.hub.pool.extendList(principal, route.kind, doc)
        : doc
    sendJson(res, 200, pooled)
  }

  /**
   * A device's pull runs in the hub's model manager, so the owner sees its progress and can cancel it, and
   * two pulls of one model are one. The client gets Ollama's progress stream shape (`api/types.go`
   * ProgressResponse; an `{"error"}` line when it fails), or one object with `stream: false`. A client that
   * goes away stops listening; the pull goes on for whoever else waits (the owner can cancel it).
   */
  private async pull(
    api: GatewayApi,
    admission: Admission,
    res: ServerResponse,
    signal: AbortSignal,
  ): Promise<ForwardResult> {
    const handle = this.hub.models.pull(admission.model as string)
    const failed = (err: unknown) => {
      const e = asGatewayError(err)
      return e.details?.upstream && typeof e.details.upstream === 'string' ? e.details.upstream : e.message
    }
    if (admission.outgoing.stream === false) {
      const gone = new Promise<'gone'>((resolve) => {
        res.once('close', () => resolve('gone'))
        signal.addEventListener('abort', () => resolve('gone'), { once: true })
      })
      try {
        if ((await Promise.race([handle.done.then(() => 'done' as const), gone])) === 'gone') {
          if (signal.aborted) sendGatewayError(res, api, asGatewayError(signal.reason))
          return { status: 499, outcome: 'client_closed', success: false }
        }
        sendJson(res, 200, { status: 'success' })
        return { status: 200, outcome: 'completed', success: true }
      } catch (err) {
        const e = asGatewayError(err)
        sendGatewayError(res, api, e)
        return { status: e.status, outcome: 'upstream_error', success: false }
      }
    }
    res.writeHead(200, {
      'content-type': 'application/x-ndjson',
      'cache-control': 'no-cache',
      'x-accel-buffering': 'no',
    })
    res.flushHeaders()
    const it = handle[Symbol.asyncIterator]()
    const stop = () => void it.return?.()
    res.once('close', stop)
    signal.addEventListener('abort', stop, { once: true })
    try {
      for (;;) {
        const next = await it.next()
        if (next.done) break
        if (res.destroyed) break
        res.write(`${JSON.stringify(progressLine(next.value))}\n`)
      }
      if (res.destroyed || signal.aborted) {
        if (signal.aborted) res.destroy()
        return { status: 499, outcome: signal.aborted ? 'aborted' : 'client_closed', success: false }
      }
      await handle.done
      res.end()
      return { status: 200, outcome: 'completed', success: true }
    } catch (err) {
      if (!res.destroyed) res.end(`${JSON.stringify({ error: failed(err) })}\n`)
      return { status: 502, outcome: 'upstream_error', success: false }
    } finally {
      res.off('close', stop)
      signal.removeEventListener('abort', stop)
    }
  }
}

/**
 * Whether Ollama sends this answer's headers only when it is complete: `stream: false`, and the embedding
 * routes, which never stream (server/routes.go EmbedHandler, EmbeddingsHandler).
 */
function answersAtTheEnd(route: GatewayRoute, admission: Admission): boolean {
  if (admission.outgoing.stream === false) return true
  return route.body === 'embed' || route.body === 'embeddings' || route.translate === 'embed'
}

/** One line of Ollama's pull stream from the manager's progress (summed over layers). */
function progressLine(p: PullProgress): Record<string, unknown> {
  if (p.status === 'success') return { status: 'success' }
  return { status: p.status, ...(p.total > 0 ? { total: p.total, completed: p.completed } : {}) }
}

import { type Admission, type Hub, modelAllowed, type Principal, SharedLLMError } from '@sharedllm/core'
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http'
import { authenticate, unauthorized } from './bearer'
import { readJsonObject } from './body'
import { InFlight } from './inflight'
import { filterList, listableFilter } from './listing'
import { pullModelName, requestModel } from './model-name'
import { type ForwardResult, forward } from './proxy'
import { asGatewayError, sendGatewayError, sendJson } from './respond'
import { apiOf, type GatewayRoute, resolveRoute } from './routes'
import { Upstream } from './upstream'

export interface GatewayOptions {
  /** Largest request body in bytes. @default 16 MiB */
  bodyLimit?: number
  /** How long Ollama may take to start answering a forwarded request (model loads are slow). @default 300000 */
  headersTimeoutMs?: number
  /** Deadline for the model lists the gateway reads and filters. @default 10000 */
  listTimeoutMs?: number
}

type RequestWithBody = IncomingMessage & { body?: unknown }

const NEVER = new AbortController().signal

/** Client headers passed to Ollama; everything else (cookie, authorization, origin, hop-by-hop) is not. */
function passHeaders(req: IncomingMessage): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {}
  if (req.headers.accept) out.accept = req.headers.accept
  if (req.headers['user-agent']) out['user-agent'] = req.headers['user-agent']
  return out
}

function isObject(v: unknown): v is Record<string, unknown> {
  return !!v && typeof v === 'object' && !Array.isArray(v)
}

/** The gateway's request handling, independent of Express: authenticate, route, admit, forward, record. */
export class Gateway {
  readonly upstream: Upstream
  readonly inFlight = new InFlight()
  private readonly bodyLimit: number
  private readonly headersTimeoutMs: number
  private readonly listTimeoutMs: number

  constructor(
    private readonly hub: Hub,
    options: GatewayOptions = {},
  ) {
    this.upstream = new Upstream(() => hub.settings.get('ollama_host'))
    this.bodyLimit = options.bodyLimit ?? 16 * 1024 * 1024
    this.headersTimeoutMs = options.headersTimeoutMs ?? 300_000
    this.listTimeoutMs = options.listTimeoutMs ?? 10_000
    hub.on('device_keys_revoked', ({ device_id }) => {
      this.inFlight.abortDevice(device_id, unauthorized())
    })
  }

  /** Handles a request under `/ollama` or `/v1`. Never throws; every failure is an answer. */
  async handle(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    const api = apiOf(path)
    let flight: { signal: AbortSignal; close: () => void } | undefined
    try {
      const principal = await authenticate(this.hub, req)
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
      flight = principal.kind === 'device' ? this.inFlight.open(principal.device.id) : undefined
      await this.dispatch(resolved.route, principal, req, res, flight?.signal ?? NEVER)
    } catch (err) {
      const e = asGatewayError(err)
      if (e.code === 'INTERNAL') this.hub.log.error({ err, path }, 'gateway request failed')
      // A refused request whose body was never read: close rather than drain whatever the client still sends.
      if (!req.complete && !res.headersSent) res.setHeader('Connection', 'close')
      sendGatewayError(res, api, e)
    } finally {
      flight?.close()
    }
  }

  private async dispatch(
    route: GatewayRoute,
    principal: Principal,
    req: IncomingMessage,
    res: ServerResponse,
    signal: AbortSignal,
  ): Promise<void> {
    switch (route.kind) {
      case 'infer':
      case 'show':
      case 'pull':
        return this.admitted(route, principal, req, res, signal, await this.body(req))
      case 'tags':
        return this.list(route, principal, res, 'models', 'name')
      case 'ps':
        return this.list(route, principal, res, 'models', 'name')
      case 'models':
        return this.list(route, principal, res, 'data', 'id')
      case 'version':
        await forward({
          upstream: this.upstream,
          api: route.api,
          method: 'GET',
          path: route.upstream,
          headers: passHeaders(req),
          res,
          signal,
          headersTimeoutMs: this.listTimeoutMs,
        })
        return
    }
  }

  private body(req: RequestWithBody): Promise<Record<string, unknown>> {
    // Another body parser got there first (an app-wide express.json): use what it read.
    if (req.readableEnded) return Promise.resolve(isObject(req.body) ? req.body : {})
    return readJsonObject(req, this.bodyLimit)
  }

  /** chat, generate, embeddings, completions, show and pull: admitted by the policy, forwarded, recorded. */
  private async admitted(
    route: GatewayRoute,
    principal: Principal,
    req: IncomingMessage,
    res: ServerResponse,
    signal: AbortSignal,
    body: Record<string, unknown>,
  ): Promise<void> {
    const started = performance.now()
    const model = route.kind === 'pull' ? pullModelName(body) : requestModel(body, route.kind === 'show')
    if (body.options !== undefined && !isObject(body.options)) {
      throw new SharedLLMError('VALIDATION', 'options: must be an object', { details: { field: 'options' } })
    }
    const options = body.options as Record<string, unknown> | undefined
    if (route.kind === 'show') this.checkAllowed(principal, model)
    const admission = await this.hub.policy.admit(principal, {
      endpoint: route.endpoint,
      ...(route.kind === 'show' ? {} : { model }),
      ...(route.kind === 'infer' && route.api === 'ollama' ? { numCtx: options?.num_ctx } : {}),
      ...(route.kind === 'infer' ? { keepAlive: body.keep_alive } : {}),
      ...(route.kind === 'pull' ? { pull: true } : {}),
    })
    let result: ForwardResult | undefined
    try {
      if (route.kind === 'pull') this.checkAllowed(principal, model)
      const { outgoing, stripUsageEvent } = rewrite(route, body, model, admission)
      result = await forward({
        upstream: this.upstream,
        api: route.api,
        method: 'POST',
        path: route.upstream,
        body: Buffer.from(JSON.stringify(outgoing)),
        headers: passHeaders(req),
        res,
        signal,
        headersTimeoutMs: this.headersTimeoutMs,
        stripUsageEvent,
      })
      if (route.kind === 'pull' && result.success) this.hub.bus.emit('model_pulled', { name: model })
    } finally {
      admission.release()
      if (result) {
        void this.hub.policy.recordUsage({
          device_id: admission.deviceId,
          model,
          endpoint: route.endpoint,
          prompt_tokens: result.counts?.prompt_tokens ?? 0,
          completion_tokens: result.counts?.completion_tokens ?? 0,
          duration_ms: Math.round(performance.now() - started),
          status: result.status,
        })
      }
    }
  }

  /** The role's model list, for routes the policy admits without a model (show) or without the list (pull). */
  private checkAllowed(principal: Principal, model: string): void {
    if (principal.kind !== 'device' || modelAllowed(principal.role.allowed_models, model)) return
    this.hub.metrics.rejections.add({ reason: 'model_not_allowed' })
    throw new SharedLLMError(
      'FORBIDDEN',
      `role '${principal.role.name}' may not use model '${model}'; allowed: ${principal.role.allowed_models.join(', ')}`,
    )
  }

  /** tags, ps and /v1/models: Ollama's list, filtered to what the caller may use. */
  private async list(
    route: GatewayRoute,
    principal: Principal,
    res: ServerResponse,
    listKey: 'models' | 'data',
    nameKey: 'name' | 'id',
  ): Promise<void> {
    const [upstream, keep] = await Promise.all([
      this.upstream.getJson(route.upstream, this.listTimeoutMs),
      listableFilter(this.hub, principal),
    ])
    if (upstream.status !== 200 || !isObject(upstream.body)) {
      // Ollama's own 4xx answer (or a body we cannot read) is passed on as it came.
      sendJson(
        res,
        upstream.status === 200 ? 502 : upstream.status,
        upstream.body ?? { error: upstream.text },
      )
      return
    }
    sendJson(res, 200, filterList(upstream.body, listKey, nameKey, keep))
  }
}

/**
 * The body Ollama receives: the validated model (the name that was checked is the name that runs), the
 * clamped keep_alive and num_ctx, and for OpenAI streams `stream_options.include_usage` so usage can be
 * recorded (the extra usage event is removed again unless the client asked for it).
 */
export function rewrite(
  route: GatewayRoute,
  body: Record<string, unknown>,
  model: string,
  admission: Admission,
): { outgoing: Record<string, unknown>; stripUsageEvent: boolean } {
  if (route.kind === 'pull') {
    // Only what a pull needs: no `insecure`, no custom registries.
    return {
      outgoing: { model, ...(typeof body.stream === 'boolean' ? { stream: body.stream } : {}) },
      stripUsageEvent: false,
    }
  }
  const { name: _name, ...rest } = body
  const outgoing: Record<string, unknown> = { ...rest, model }
  if (route.kind !== 'infer') return { outgoing, stripUsageEvent: false }
  if (admission.keepAlive !== undefined) outgoing.keep_alive = admission.keepAlive
  if (admission.numCtx !== undefined) {
    outgoing.options = { ...(body.options as Record<string, unknown> | undefined), num_ctx: admission.numCtx }
  }
  let stripUsageEvent = false
  if (route.api === 'openai' && body.stream === true) {
    const so = isObject(body.stream_options) ? body.stream_options : {}
    if (so.include_usage !== true) {
      outgoing.stream_options = { ...so, include_usage: true }
      stripUsageEvent = true
    }
  }
  return { outgoing, stripUsageEvent }
}

import { randomUUID } from 'node:crypto'
import type { ServerResponse } from 'node:http'
import type { Principal } from '../access/access'
import { SharedLLMError } from '../errors'
import { estimatePromptTokens } from '../fairshare/estimate'
import { type Lease, type QueueLimits, queueLimitsOf } from '../fairshare/scheduler'
import type { Hub } from '../hub'
import type { Role } from '../protocol/types'
import { ADMIN_ROLE_ID } from '../protocol/types'
import { effectiveBudgets } from '../usage/quota'
import type { ForwardResult } from './http/proxy'
import type { GatewayRoute } from './http/routes'
import { normaliseModelName } from './patterns'
import type { Admission } from './policy'

/** The owner's key in the queue (its admin secret or session has no device). */
export const OWNER_QUEUE_ID = 'admin'

/** A request released by the queue: forward with `signal`, report chunks with `output`, then `end`. */
export interface QueuedRun {
  readonly requestId: string
  /** Aborted when the exchange is (revoked, server stopping) or the owner reclaims the GPU. */
  readonly signal: AbortSignal
  readonly waitedMs: number
  /** Output tokens streamed (one per content chunk), so the device's counter moves while it streams. */
  output(tokens: number): void
  /** Ends the run: corrects the counter with Ollama's counts and frees the slot. Idempotent. */
  end(result?: ForwardResult): void
}

/**
 * The gateway's queue stage, between admission and the forward: an inference request waits in the
 * fair-share queue until Ollama has a free slot for its model, and is released by VTC order. A client that
 * goes away while it waits, or whose keys die, leaves the queue at once; the refusals (max_queued,
 * max_wait_s, paused) are SharedLLMErrors with Retry-After.
 */
export class QueueStage {
  private ownerRole: Promise<Role> | undefined
  private readonly off: () => void

  constructor(private readonly hub: Hub) {
    this.off = hub.on('role_changed', ({ role }) => {
      if (role.id === ADMIN_ROLE_ID) this.ownerRole = undefined
    })
  }

  close(): void {
    this.off()
  }

  /** Waits for the request's turn; undefined for routes that do not run a model (never queued). */
  async enter(
    principal: Principal,
    route: GatewayRoute,
    admission: Admission,
    exchange: AbortSignal,
    res: ServerResponse,
  ): Promise<QueuedRun | undefined> {
    if (route.kind !== 'infer' || !admission.model) return undefined
    const limits = await this.limits(principal)
    const deviceId = principal.kind === 'device' ? principal.device.id : OWNER_QUEUE_ID
    const waiting = new AbortController()
    const gone = () => {
      if (!res.writableFinished) waiting.abort(exchange.reason)
    }
    const left = () => waiting.abort(exchange.reason)
    res.once('close', gone)
    exchange.addEventListener('abort', left, { once: true })
    const given = res.req?.headers['x-request-id']
    // The client's own id (the PWA matches queue_position events to its chat by it), else a fresh one; a
    // device's events go to its own sockets only, so an id another request holds is simply not reused.
    const requestId =
      typeof given === 'string' && REQUEST_ID.test(given) && !this.hub.queue.scheduler.has(given)
        ? given
        : randomUUID()
    let lease: Lease
    try {
      const ticket = this.hub.queue.scheduler.submit({
        id: requestId,
        device_id: deviceId,
        model: normaliseModelName(admission.model),
        limits,
        prompt_tokens: estimatePromptTokens(admission.outgoing),
        signal: waiting.signal,
      })
      lease = await ticket.granted
    } catch (err) {
      // Revoked or stopping while it waited: the exchange's reason is the answer.
      if (exchange.aborted && exchange.reason instanceof SharedLLMError) throw exchange.reason
      throw err
    } finally {
      res.off('close', gone)
      exchange.removeEventListener('abort', left)
    }
    if (lease.waited_ms > 0 && principal.kind === 'device') {
      // Budgets and hours are admission's rule, checked again when the turn comes: requests admitted
      // together and run one after another would otherwise all run past a budget the first ones used up.
      try {
        await this.hub.policy.budgets(principal)
      } catch (err) {
        lease.finish({})
        throw err
      }
    }
    const signal = AbortSignal.any([exchange, lease.signal])
    return {
      requestId,
      signal,
      waitedMs: lease.waited_ms,
      output: (n) => lease.output(n),
      end: (result) => {
        const c = result?.counts
        lease.finish(c ? { prompt_eval_count: c.prompt_tokens, eval_count: c.completion_tokens } : {})
      },
    }
  }

  /**
   * Records a finished request through the batch recorder (off the request path), keeps the gateway's
   * counters, emits `usage`, and the `quota` event (and the owner's `budget_reached` notice at 100 %) when
   * it passes a budget mark. Never throws.
   */
  record(
    principal: Principal,
    route: GatewayRoute,
    admission: Admission,
    result: ForwardResult,
    durationMs: number,
    run: QueuedRun | undefined,
    /** The peer host that served a routed request. */
    via?: string,
  ): void {
    try {
      const deviceId = admission.deviceId
      const prompt = result.counts?.prompt_tokens ?? 0
      const completion = result.counts?.completion_tokens ?? 0
      const at = this.hub.now()
      const labels = { device: deviceId ?? 'admin', model: admission.model ?? '', endpoint: route.endpoint }
      const m = this.hub.metrics
      m.requests.add({ ...labels, status: String(result.status) })
      if (prompt) m.tokens.add({ device: labels.device, model: labels.model, kind: 'prompt' }, prompt)
      if (completion) {
        m.tokens.add({ device: labels.device, model: labels.model, kind: 'completion' }, completion)
      }
      const event = {
        device_id: deviceId,
        model: admission.model,
        endpoint: route.endpoint,
        prompt_tokens: prompt,
        completion_tokens: completion,
        duration_ms: Math.round(durationMs),
        status: result.status,
        at,
        ...(via ? { via } : {}),
      }
      // Only a request that went through the queue has a wait (a routed one waited in the peer's queue).
      this.hub.recorder.record(run ? { ...event, queue_wait_ms: run.waitedMs } : event)
      // The stored row gets its id when the batch is written; the live event carries one unique in this
      // process that no stored row has (negative), so a client that de-duplicates by id keeps both.
      this.hub.bus.emit('usage', { id: -++usageSeq, ...event })
      if (principal.kind === 'device' && prompt + completion > 0) {
        const { device, role } = principal
        void this.hub.quotaWatch
          .observe(device.id, effectiveBudgets(role, device), prompt + completion, at)
          .then((crossings) => {
            for (const c of crossings) {
              this.hub.bus.emit('quota', c)
              if (c.threshold === 100) {
                this.hub.bus.emit('budget_reached', {
                  ...c,
                  device_name: device.name,
                  time_zone: this.hub.usage.zone,
                })
              }
            }
          })
      }
    } catch (err) {
      this.hub.log.error({ err }, 'could not record usage')
    }
  }

  /**
   * A refused inference request of a known caller (budget, hours, rate, model list, queue, a peer that
   * failed): counted as a request and an error in the hourly rollups, so the usage charts show refusals,
   * but written as no raw row, so a device that floods refusals cannot grow the usage table. Never throws.
   * (`err` is read for its status, and for the wait of a request that waited past max_wait_s.)
   */
  recordRefusal(
    principal: Principal,
    route: GatewayRoute,
    admission: Admission | undefined,
    err: SharedLLMError,
    durationMs: number,
  ): void {
    try {
      // Only an admitted model names the row (installed, or on a peer): a name from a refused body is the
      // caller's own text, and unique names would grow the rollups and the metrics without bound.
      const model = admission?.model ?? null
      const device = principal.kind === 'device' ? principal.device.id : null
      this.hub.metrics.requests.add({
        device: device ?? 'admin',
        model: model ?? '',
        endpoint: route.endpoint,
        status: String(err.status),
      })
      this.hub.recorder.record({
        device_id: device,
        model,
        endpoint: route.endpoint,
        prompt_tokens: 0,
        completion_tokens: 0,
        duration_ms: Math.round(durationMs),
        status: err.status,
        rollupOnly: true,
        // It waited its role's whole max_wait_s (fairshare/scheduler.ts expire): that wait counts in the
        // charts' p95, or the waits that ended worst would be missing from them.
        ...(err.details?.reason === 'queue_wait' && typeof err.details.max_wait_s === 'number'
          ? { queue_wait_ms: err.details.max_wait_s * 1000 }
          : {}),
      })
    } catch (e) {
      this.hub.log.error({ err: e }, 'could not record a refused request')
    }
  }

  private async limits(principal: Principal): Promise<QueueLimits> {
    if (principal.kind === 'device') return queueLimitsOf(principal.role)
    // The owner: the admin role's weight and wait, and no cap of its own on how many run or wait.
    this.ownerRole ??= this.hub.roles.get(ADMIN_ROLE_ID).catch((err: unknown) => {
      this.ownerRole = undefined
      throw err
    })
    const role = await this.ownerRole
    return { ...queueLimitsOf(role), max_concurrent: 1000, max_queued: 1000 }
  }
}

let usageSeq = 0

/** A client-chosen request id (`X-Request-Id`): 8 to 64 letters, digits, `.`, `_`, `-`. */
const REQUEST_ID = /^[A-Za-z0-9._-]{8,64}$/

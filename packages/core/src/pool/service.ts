import { createHash } from 'node:crypto'
import { setMaxListeners } from 'node:events'
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http'
import type { Knex } from 'knex'
import type { Principal } from '../access/access'
import { baseUrl, PeerClient } from '../discovery/peer-client'
import type { SettingsService } from '../domain/settings'
import { errorMessage, isSharedLLMError, SharedLLMError } from '../errors'
import type { EventBus } from '../events'
import { isMLX, estimateFit, FIT_OVERHEAD_BYTES, type FitEstimate, MiB } from '../gateway/fit'
import { type ForwardRequest, type ForwardResult, forward } from '../gateway/http/proxy'
import { sendGatewayError } from '../gateway/http/respond'
import type { GatewayRoute } from '../gateway/http/routes'
import { modelAllowed, normaliseModelName } from '../gateway/patterns'
import type { Admission, GatewayPolicy, ModelCatalog } from '../gateway/policy'
import type { Logger } from '../logger'
import type { PeerStatusModel, PeerStatusResponse, PoolHost, PoolResponse } from '../protocol/api'
import type { Peer, PeerPoolState } from '../protocol/types'
import { type PeerRecord, peersRepo, toPeer } from '../store/peers'
import { pinnedFetch } from '../tls/pinned-fetch'
import { Breaker } from './breaker'
import { QUEUE_WAIT_MAX_MS } from './schema'
import { PeerUpstream } from './upstream'

/** A peer row with its pinned CA (migration 005). */
interface PinnedPeer extends PeerRecord {
  ca_pem?: string | null
  ca_fingerprint?: string | null
  https_port?: number | null
}

export interface PoolServiceOptions {
  db: () => Knex
  bus: EventBus
  log: Logger
  settings: SettingsService
  policy: GatewayPolicy
  catalog: () => ModelCatalog | undefined
  instanceId: () => string
  selfName: () => string
  version: string
  freeMb: () => number | undefined
  totalMb: () => number | undefined
  ollamaRunning: () => boolean
  /** Requests waiting per model in the fair-share queue, once the gateway has one. */
  queueDepth?: () => Record<string, number> | undefined
  /** Per model with requests running or waiting: the expected wait of a new one, ms (told to peers). */
  queueWaits?: () => Record<string, number> | undefined
  /** The expected wait here of a request for this (normalised) model, ms; undefined: unknown. */
  queueWaitMs?: (model: string) => number | undefined
  /**
   * A request's service time here for this (normalised) model, ms: what each request routed to a peer since
   * its last status is taken to add to that peer's wait (its own figure is not known until the next poll).
   */
  serviceMs?: (model: string) => number | undefined
  /** Status poll cadence. @default 3000 */
  pollIntervalMs?: number
  /** Per status poll. @default 2500 */
  pollTimeoutMs?: number
  /** Missed polls in a row after which a peer is down. @default 2 */
  missesToDown?: number
  /** Routed requests: a connection not made within this is a failure (failover). @default 3000 */
  connectTimeoutMs?: number
  breakerThreshold?: number
  breakerOpenMs?: number
  now?: () => number
}

interface PeerState {
  id: string
  name: string
  status: PeerStatusResponse | undefined
  /** The address that answered the last poll: routed requests go there. */
  address: string | undefined
  up: boolean
  missed: number
  lastOkAt: number | null
  lastError: string | null
  latencyMs: number | null
  /** Status polls it answered since this service started. */
  okPolls: number
  breaker: Breaker
  /** This service wrote the row's error (so a good poll clears it, and only that). */
  wroteError: boolean
  written: string | null
  upstream: PeerUpstream | undefined
  /**
   * Aborted when the peer is marked down (missed polls): a routed request still waiting for its first byte
   * there gives up and moves to the next host, instead of waiting out the headers deadline. A new one is
   * made when the peer answers again.
   */
  reachable: AbortController
  /**
   * Requests this host routed there per (normalised) model since its last status: they are in no status yet,
   * so they count on top of it, or every request within a poll would herd to the one that looked idle.
   */
  routedSince: Map<string, number>
}

/** A host a request may go to, with what ranks it (model loaded there, fits its free memory, queue, latency). */
interface Candidate {
  id: string
  name: string
  loaded: boolean
  fits: boolean
  queue: number
  /** Expected wait in its fair-share queue, ms; undefined: unknown (it has requests waiting, no estimate). */
  waitMs: number | undefined
  latencyMs: number
  state: PeerState | undefined
}

/** Where an admitted request runs: peers in order, and whether this host is the last resort. */
export interface RoutePlan {
  peers: Candidate[]
  localFallback: boolean
}

export interface ServeRequest {
  principal: Principal
  route: GatewayRoute
  admission: Admission
  req: IncomingMessage
  res: ServerResponse
  signal: AbortSignal
  headersTimeoutMs: number
  headers: OutgoingHttpHeaders
  /** The OpenAI translation's rewrite of the answer (the peer is sent the native request). */
  transform?: ForwardRequest['transform']
}

/** A model of a peer's status: installed there, loaded there, or both. */
interface PeerModelEntry {
  installed?: PeerStatusResponse['installed'][number]
  loaded?: PeerStatusResponse['loaded'][number]
}

/** The index of each status held (a status is replaced whole by the next poll, and its index with it). */
const statusIndex = new WeakMap<PeerStatusResponse, Map<string, PeerModelEntry>>()

/** The controller of a peer's `reachable` signal: every routed request to it listens (no leak warning). */
function routedSignal(): AbortController {
  const c = new AbortController()
  setMaxListeners(0, c.signal)
  return c
}

const STICKY_MS = 30 * 60_000
const STICKY_MAX = 10_000
const SELF = 'self'

/** The peer's gateway path for what this host would send its own Ollama (`/v1/*` as is, else under `/ollama`). */
function peerPath(route: GatewayRoute): string {
  return route.upstream.startsWith('/v1/') ? route.upstream : `/ollama${route.upstream}`
}

/** A device that is another sharedLLM host (its key was claimed by a peer's PeersService). */
export function isPeerPrincipal(p: Principal): boolean {
  return p.kind === 'device' && p.device.instance_id !== null
}

/**
 * Pooling: serves `/api/peer/status` to paired hosts, polls each joined peer's status over HTTPS with its
 * pinned CA, and routes admitted gateway requests to the best peer (model loaded there, then fits its free
 * memory, then queue, then latency; the same host again for the same device and model), failing over only
 * before the first byte, with a circuit breaker per peer.
 */
export class PoolService {
  private readonly states = new Map<string, PeerState>()
  private readonly clients = new Map<string, PeerClient>()
  private readonly sticky = new Map<string, { host: string; at: number }>()
  private readonly polling = new Set<string>()
  /** The rows of the joined peers as last polled (routed requests need their pinned CA and key). */
  private readonly records = new Map<string, PinnedPeer>()
  private readonly now: () => number
  private timer: NodeJS.Timeout | undefined
  private readonly abort = new AbortController()
  private stopped = false

  constructor(private readonly o: PoolServiceOptions) {
    this.now = o.now ?? Date.now
  }

  start(): void {
    if (this.timer || this.stopped) return
    void this.pollAll()
    this.timer = setInterval(() => void this.pollAll(), this.o.pollIntervalMs ?? 3000)
    this.timer.unref()
  }

  stop(): void {
    this.stopped = true
    clearInterval(this.timer)
    this.timer = undefined
    this.abort.abort()
    for (const s of this.states.values()) s.upstream?.close()
  }

  // ---- GET /api/peer/status -------------------------------------------------------------------

  /** This host's status for a paired host (a device whose key was claimed by another sharedLLM). */
  async status(principal: Principal | null): Promise<PeerStatusResponse> {
    if (principal?.kind !== 'device' || !isPeerPrincipal(principal)) {
      throw new SharedLLMError(
        'FORBIDDEN',
        '/api/peer/status is for paired sharedLLM hosts: send the device key this host gave yours',
      )
    }
    const { role, device } = principal
    const catalog = this.o.catalog()
    const [installed, running] = catalog
      ? await Promise.all([catalog.list().catch(() => []), catalog.running().catch(() => [])])
      : [[], []]
    const allowed = (name: string) => modelAllowed(role.allowed_models, name)
    const models: PeerStatusModel[] = []
    for (const m of installed.filter((m) => allowed(m.name)).slice(0, 2000)) {
      models.push({
        name: m.name,
        model: m.model || m.name,
        digest: m.digest,
        size: m.size,
        modified_at: m.modified_at ?? '',
        details: m.details ?? {},
        kv_bytes_per_token: await this.o.policy.kvBytesPerToken(m),
      })
    }
    // Only the models the caller's role here may use, as for the lists above.
    const ours = (r: Record<string, number> | undefined) =>
      r && Object.fromEntries(Object.entries(r).filter(([name]) => allowed(name)))
    const queue = ours(this.o.queueDepth?.())
    const waits = ours(this.o.queueWaits?.())
    return {
      instance_id: this.o.instanceId(),
      name: this.o.selfName(),
      version: this.o.version,
      free_mb: this.o.freeMb() ?? null,
      total_mb: this.o.totalMb() ?? null,
      allocation_mb: device.allocation_mb,
      allowed_models: role.allowed_models,
      ollama_running: this.o.ollamaRunning(),
      installed: models,
      loaded: running
        .filter((m) => allowed(m.name))
        .slice(0, 200)
        .map((m) => ({
          name: m.name,
          digest: m.digest,
          size: m.size,
          size_vram: m.size_vram,
          context_length: m.context_length,
          expires_at: m.expires_at,
        })),
      ...(queue ? { queue } : {}),
      ...(waits ? { queue_wait_ms: boundWaits(waits) } : {}),
    }
  }

  // ---- polling ---------------------------------------------------------------------------------

  /** Polls every joined peer once (each at most once at a time). Never throws. */
  async pollAll(): Promise<void> {
    if (this.stopped) return
    let peers: PinnedPeer[]
    try {
      peers = (await peersRepo.listByStatus(this.o.db(), ['joined'])) as PinnedPeer[]
    } catch (err) {
      this.o.log.warn({ err }, 'pool: could not read the peers')
      return
    }
    const known = new Set(peers.map((p) => p.id))
    for (const [id, s] of this.states) {
      if (!known.has(id)) {
        s.upstream?.close()
        this.states.delete(id)
        this.records.delete(id)
        for (const key of this.clients.keys()) if (key.startsWith(`${id}|`)) this.clients.delete(key)
      }
    }
    for (const p of peers) this.records.set(p.id, p)
    await Promise.all(peers.filter((p) => p.device_key).map((p) => this.pollOne(p)))
  }

  private stateOf(peer: PeerRecord): PeerState {
    let s = this.states.get(peer.id)
    if (!s) {
      s = {
        id: peer.id,
        name: peer.name,
        status: undefined,
        address: undefined,
        up: false,
        missed: 0,
        lastOkAt: null,
        lastError: null,
        latencyMs: null,
        okPolls: 0,
        breaker: new Breaker({
          ...(this.o.breakerThreshold ? { threshold: this.o.breakerThreshold } : {}),
          ...(this.o.breakerOpenMs ? { openMs: this.o.breakerOpenMs } : {}),
          now: this.now,
        }),
        wroteError: false,
        written: null,
        upstream: undefined,
        reachable: routedSignal(),
        routedSince: new Map(),
      }
      this.states.set(peer.id, s)
    }
    s.name = peer.name
    return s
  }

  private async pollOne(peer: PinnedPeer): Promise<void> {
    if (this.polling.has(peer.id)) return
    this.polling.add(peer.id)
    const s = this.stateOf(peer)
    try {
      if (!peer.online) throw new SharedLLMError('UPSTREAM_UNAVAILABLE', `'${peer.name}' is offline`)
      const { client, port } = this.pinnedClient(peer)
      const started = performance.now()
      let last: unknown = new SharedLLMError('UPSTREAM_UNAVAILABLE', `'${peer.name}' has no known address`)
      let answered: { doc: PeerStatusResponse; address: string } | undefined
      for (const address of peer.addresses) {
        try {
          const doc = await client.status(
            baseUrl(address, port, 'https'),
            peer.device_key as string,
            this.abort.signal,
          )
          answered = { doc, address }
          break
        } catch (err) {
          last = err
          if (!isSharedLLMError(err, 'UPSTREAM_UNAVAILABLE') && !isSharedLLMError(err, 'TIMEOUT')) break
        }
      }
      if (!answered) throw last
      if (answered.doc.instance_id !== peer.instance_id) {
        throw new SharedLLMError(
          'UPSTREAM_ERROR',
          `'${peer.name}' answered its status as another host (${answered.doc.instance_id})`,
        )
      }
      const rtt = performance.now() - started
      // The first answer is the slow one (the peer reads the shape of each of its models for its first
      // status): the second replaces it when shorter, rather than weighing on the average (and the
      // ranking) for the next dozen polls. Every poll is a new TLS connection (tls/pinned-fetch.ts).
      if (s.latencyMs === null || (s.okPolls === 1 && rtt < s.latencyMs)) s.latencyMs = rtt
      else s.latencyMs = s.latencyMs * 0.7 + rtt * 0.3
      s.okPolls++
      s.status = answered.doc
      s.routedSince.clear()
      s.address = answered.address
      s.missed = 0
      s.lastOkAt = this.now()
      s.lastError = null
      const changed = !s.up
      s.up = true
      if (s.reachable.signal.aborted) s.reachable = routedSignal()
      if (s.wroteError) {
        s.wroteError = false
        s.written = null
        await this.patchError(peer, null)
      } else if (changed) this.emit(peer)
    } catch (err) {
      if (this.stopped) return
      s.missed++
      s.lastError = errorMessage(err)
      if (s.up && s.missed >= (this.o.missesToDown ?? 2)) {
        s.up = false
        s.reachable.abort(new Error(`it stopped answering its status (${s.lastError})`))
        this.o.log.warn({ peer: peer.name, err: s.lastError }, 'pool: a peer stopped answering its status')
      }
      // Down (or never up): the current cause on the row for the dashboard, written only when it changes.
      const text = `pool: not answering its status: ${s.lastError}`
      if (!s.up && s.written !== text) {
        s.written = text
        s.wroteError = true
        await this.patchError(peer, text)
      }
    } finally {
      this.polling.delete(peer.id)
    }
  }

  /** HTTPS with the pinned CA, or nothing: pooling never speaks plain HTTP to a peer. */
  private pinnedClient(peer: PinnedPeer): { client: PeerClient; port: number } {
    if (!peer.ca_pem || !peer.ca_fingerprint || !peer.https_port) {
      throw new SharedLLMError(
        'CONFLICT',
        `'${peer.name}' has no pinned CA: pooling needs HTTPS; turn HTTPS on there and join it again`,
      )
    }
    const key = `${peer.id}|${peer.ca_fingerprint}`
    let client = this.clients.get(key)
    if (!client) {
      client = new PeerClient({
        fetch: pinnedFetch({ caPem: peer.ca_pem, caFingerprint: peer.ca_fingerprint }),
        timeoutMs: this.o.pollTimeoutMs ?? 2500,
      })
      for (const k of this.clients.keys()) if (k.startsWith(`${peer.id}|`)) this.clients.delete(k)
      this.clients.set(key, client)
    }
    return { client, port: peer.https_port }
  }

  private async patchError(peer: PeerRecord, error: string | null): Promise<void> {
    try {
      const now = this.now()
      await peersRepo.update(this.o.db(), peer.id, { error, updated_at: now })
      peer.error = error
      peer.updated_at = now
      this.emit(peer)
    } catch (err) {
      this.o.log.warn({ err }, 'pool: could not record the peer state')
    }
  }

  private emit(peer: PeerRecord): void {
    this.o.bus.emit('peer_updated', { peer: this.annotate(toPeer(peer)) })
  }

  /** Adds the pooling state to a peer of `GET /api/peers`. */
  annotate(peer: Peer): Peer {
    const s = this.states.get(peer.id)
    return s ? { ...peer, pool: this.view(s) } : peer
  }

  private view(s: PeerState): PeerPoolState {
    return {
      up: s.up,
      missed: s.missed,
      last_ok_at: s.lastOkAt,
      last_error: s.lastError,
      latency_ms: s.latencyMs === null ? null : Math.round(s.latencyMs * 10) / 10,
      breaker: s.breaker.view(),
    }
  }

  // ---- estimates and candidates ----------------------------------------------------------------

  /**
   * A status's models by resolved name, built once per status: the lists hold up to 2,000 models and are
   * looked up on every request and every list.
   */
  private modelsOf(doc: PeerStatusResponse): Map<string, PeerModelEntry> {
    let index = statusIndex.get(doc)
    if (!index) {
      index = new Map()
      // The first of two entries that resolve alike wins, as a search of the list would find it.
      for (const m of doc.installed) {
        const key = normaliseModelName(m.name)
        if (!index.get(key)?.installed) index.set(key, { ...index.get(key), installed: m })
      }
      for (const m of doc.loaded) {
        const key = normaliseModelName(m.name)
        if (!index.get(key)?.loaded) index.set(key, { ...index.get(key), loaded: m })
      }
      statusIndex.set(doc, index)
    }
    return index
  }

  /** What `model` needs on a peer at `contextTokens`: its loaded size there, else weights + KV + overhead. */
  private peerEstimate(doc: PeerStatusResponse, model: string, contextTokens: number): number | undefined {
    const { loaded, installed: m } = this.modelsOf(doc).get(normaliseModelName(model)) ?? {}
    // An MLX model's loaded size is the memory it holds so far, and it runs at the context it was loaded
    // with when that is larger (see GatewayPolicy.estimate): estimated, never its loaded size.
    const mlx = m !== undefined && isMLX(m)
    if (
      !mlx &&
      loaded &&
      loaded.size > 0 &&
      (loaded.context_length === null || loaded.context_length >= contextTokens)
    )
      return loaded.size
    if (!m) return undefined
    const runsAt =
      mlx && loaded?.context_length ? Math.max(contextTokens, loaded.context_length) : contextTokens
    return m.size + (m.kv_bytes_per_token ?? 0) * runsAt + FIT_OVERHEAD_BYTES
  }

  /** The smallest estimate among the up peers that have `model` (the policy checks the slice at it). */
  remoteEstimate(model: string, contextTokens: number): FitEstimate | undefined {
    if (this.o.settings.get('routing') === 'off') return undefined
    let best: number | undefined
    for (const s of this.states.values()) {
      if (!s.up || !s.status) continue
      const e = this.peerEstimate(s.status, model, contextTokens)
      if (e !== undefined && (best === undefined || e < best)) best = e
    }
    if (best === undefined) return undefined
    return {
      ...estimateFit(0, undefined, contextTokens),
      weightsBytes: best,
      overheadBytes: 0,
      totalBytes: best,
    }
  }

  /** `sliceBytes`: the device's allocation, which the request must fit at each peer's estimate. */
  private peerCandidates(
    model: string,
    contextTokens: number,
    sliceBytes: number,
    withOpenBreakers = false,
    /** Collects why an up peer that has the model is not a candidate. */
    excluded?: string[],
  ): Candidate[] {
    const out: Candidate[] = []
    const wanted = normaliseModelName(model)
    for (const s of this.states.values()) {
      const doc = s.status
      if (!s.up || !doc || !s.address || (!withOpenBreakers && !s.breaker.available())) continue
      const need = this.peerEstimate(doc, model, contextTokens)
      if (need === undefined) continue
      if (!modelAllowed(doc.allowed_models, model)) {
        excluded?.push(`${s.name} does not lend '${model}' to this host (its role for this host)`)
        continue
      }
      // The peer admits us under the role it gave this host: past our slice there it would refuse. And the
      // device's own slice holds at this peer's estimate (the admission checked it at the smallest one).
      if (need > doc.allocation_mb * MiB) {
        excluded?.push(
          `${s.name} needs about ${Math.ceil(need / MiB)} MiB for it, past the ${doc.allocation_mb} MiB it lends this host`,
        )
        continue
      }
      if (need > sliceBytes) {
        excluded?.push(
          `${s.name} needs about ${Math.ceil(need / MiB)} MiB for it, past this device's ${Math.floor(sliceBytes / MiB)} MiB`,
        )
        continue
      }
      const loaded = this.modelsOf(doc).get(wanted)?.loaded !== undefined
      const fits = loaded || (doc.free_mb !== null && need <= doc.free_mb * MiB)
      const queue = doc.queue?.[model] ?? doc.queue?.[wanted] ?? 0
      const wait = doc.queue_wait_ms?.[model] ?? doc.queue_wait_ms?.[wanted]
      // Not listed: nothing runs or waits for it there (0), unless requests wait with no estimate.
      let waitMs = wait ?? (queue > 0 ? undefined : 0)
      const routed = s.routedSince.get(wanted) ?? 0
      if (routed > 0) {
        // Each one sent since the status holds a slot there for a service time (as if it ran one at a time:
        // rather too long than a herd); without a service time, the wait there is unknown.
        const service = this.o.serviceMs?.(wanted)
        waitMs = waitMs === undefined || service === undefined ? undefined : waitMs + routed * service
      }
      out.push({
        id: s.id,
        name: s.name,
        loaded,
        fits,
        queue: queue + routed,
        waitMs,
        latencyMs: s.latencyMs ?? 1000,
        state: s,
      })
    }
    return out
  }

  /**
   * Where an admitted request runs; null: here. `local_first`: a peer serves a model not installed here, or
   * one that cannot load here now (busy) while it is loaded or fits on the peer; `balanced`: the best host of
   * the pool, this one included. Under both, a request that would wait in this host's queue longer than on
   * a peer (where it is loaded or fits) by more than `routing_wait_threshold_s` goes to the peer. A request
   * from another sharedLLM host is never routed on (no second hop).
   */
  async plan(principal: Principal, route: GatewayRoute, admission: Admission): Promise<RoutePlan | null> {
    const mode = this.o.settings.get('routing')
    if (mode === 'off' || !admission.model || isPeerPrincipal(principal)) return null
    if (route.kind !== 'infer' && route.kind !== 'show') return null
    const model = admission.model
    const ctx = admission.contextTokens ?? this.o.settings.get('default_context_tokens')
    const slice =
      principal.kind === 'device' ? principal.device.allocation_mb * MiB : Number.POSITIVE_INFINITY
    const excluded: string[] = []
    const peers = this.peerCandidates(model, ctx, slice, false, excluded)
    if (peers.length === 0) {
      // Only peers whose breaker is open have it: a 503 with Retry-After, not this host's 404.
      const waiting = this.peerCandidates(model, ctx, slice, true)
      if (waiting.length === 0 && excluded.length === 0) return null
      if ((await this.o.policy.placement(model, ctx)).installed) return null
      if (waiting.length === 0) {
        // Only peers that would refuse it have it: say why, rather than this host's "not found".
        throw new SharedLLMError(
          'FORBIDDEN',
          `model '${model}' is not installed here, and ${excluded.join('; ')}`,
          {
            details: { model },
          },
        )
      }
      return { peers: waiting, localFallback: false }
    }
    const here = await this.o.policy.placement(model, ctx)
    const wanted = normaliseModelName(model)
    const who = principal.kind === 'device' ? principal.device.id : 'owner'
    const stickyKey = `${who}|${wanted}`
    if (route.kind === 'show') {
      return here.installed ? null : { peers: this.rank(peers, stickyKey), localFallback: false }
    }
    if (!here.installed) return { peers: this.rank(peers, stickyKey), localFallback: false }
    // The third trigger: the peers where it would start sooner by more than the threshold.
    const waitHere = this.o.queueWaitMs?.(wanted)
    const threshold = this.thresholdMs()
    const sooner = peers.filter(
      (p) =>
        (p.loaded || p.fits) &&
        waitHere !== undefined &&
        p.waitMs !== undefined &&
        waitHere - p.waitMs > threshold,
    )
    const elsewhere = sooner.length ? { peers: this.rank(sooner, stickyKey), localFallback: true } : null
    if (mode === 'local_first') {
      if (here.load !== 'busy') return elsewhere
      const better = peers.filter((p) => p.loaded || p.fits)
      return better.length ? { peers: this.rank(better, stickyKey), localFallback: true } : null
    }
    const local: Candidate = {
      id: SELF,
      name: this.o.selfName(),
      loaded: here.load === 'loaded',
      fits: here.load === 'loaded' || here.load === 'free' || here.load === 'unloads_idle',
      queue: this.o.queueDepth?.()?.[wanted] ?? 0,
      waitMs: waitHere,
      latencyMs: 0,
      state: undefined,
    }
    const ranked = this.rank([local, ...peers], stickyKey)
    if (ranked[0]?.id === SELF) {
      // Served here: this host keeps the conversation (its KV cache) as a peer would.
      if (!elsewhere) this.remember(stickyKey, SELF)
      return elsewhere
    }
    return { peers: ranked.filter((c) => c.id !== SELF), localFallback: true }
  }

  private thresholdMs(): number {
    return this.o.settings.get('routing_wait_threshold_s') * 1000
  }

  /**
   * Best first: loaded there, then fits its free memory, then shorter queue, then latency (in 5 ms steps,
   * so jitter does not reorder), then a hash of the device and model (stable among equals). The host that
   * served this device and model last goes first (its KV cache is warm) while it is in the best's tier and
   * its queue is no longer, or its expected wait is not longer by more than `routing_wait_threshold_s`.
   */
  private rank(cands: Candidate[], stickyKey: string): Candidate[] {
    const tie = (c: Candidate) => createHash('sha256').update(`${stickyKey}|${c.id}`).digest().readUInt32BE(0)
    const tier = (c: Candidate) => (c.loaded ? 0 : c.fits ? 1 : 2)
    const sorted = [...cands].sort(
      (a, b) =>
        tier(a) - tier(b) ||
        a.queue - b.queue ||
        Math.floor(a.latencyMs / 5) - Math.floor(b.latencyMs / 5) ||
        tie(a) - tie(b),
    )
    const last = this.sticky.get(stickyKey)
    const first = sorted[0]
    if (last && first && this.now() - last.at < STICKY_MS) {
      const i = sorted.findIndex((c) => c.id === last.host)
      const prev = sorted[i]
      const waitGap =
        prev?.waitMs !== undefined && first.waitMs !== undefined ? prev.waitMs - first.waitMs : undefined
      const keeps =
        prev !== undefined &&
        (prev.queue <= first.queue || (waitGap !== undefined && waitGap <= this.thresholdMs()))
      if (i > 0 && prev && tier(prev) === tier(first) && keeps) {
        sorted.splice(i, 1)
        sorted.unshift(prev)
      }
    }
    return sorted
  }

  private countRouted(s: PeerState, model: string): void {
    const wanted = normaliseModelName(model)
    s.routedSince.set(wanted, (s.routedSince.get(wanted) ?? 0) + 1)
  }

  private remember(stickyKey: string, host: string): void {
    if (this.sticky.size >= STICKY_MAX) this.sticky.clear()
    this.sticky.set(stickyKey, { host, at: this.now() })
  }

  private upstreamFor(s: PeerState): PeerUpstream {
    const peerRow = s.status
    if (!peerRow || !s.address) throw new SharedLLMError('UPSTREAM_UNAVAILABLE', `'${s.name}' is down`)
    const rec = this.records.get(s.id)
    if (!rec?.ca_pem || !rec.ca_fingerprint || !rec.https_port || !rec.device_key) {
      throw new SharedLLMError('CONFLICT', `'${s.name}' has no pinned CA or key: pooling needs both`)
    }
    const opts = {
      address: s.address,
      httpsPort: rec.https_port,
      caPem: rec.ca_pem,
      caFingerprint: rec.ca_fingerprint,
      deviceKey: rec.device_key,
      ...(this.o.connectTimeoutMs ? { connectTimeoutMs: this.o.connectTimeoutMs } : {}),
    }
    if (s.upstream?.key !== PeerUpstream.keyOf(opts)) {
      s.upstream?.retire()
      s.upstream = new PeerUpstream(opts)
    }
    return s.upstream
  }

  // ---- routing a request -----------------------------------------------------------------------

  /**
   * Serves an admitted request on a peer when the plan says so; undefined: serve it here. Tries the peers in
   * order while one fails before the first byte (refused, unreachable, 5xx, timeout), never after; each
   * failure counts on that peer's breaker. All failed: a 503 naming each, unless this host has the model.
   */
  async serve(x: ServeRequest): Promise<(ForwardResult & { via: string | null }) | undefined> {
    const plan = await this.plan(x.principal, x.route, x.admission)
    if (!plan) return undefined
    const path = peerPath(x.route)
    const model = x.admission.model as string
    const stickyKey = `${x.principal.kind === 'device' ? x.principal.device.id : 'owner'}|${normaliseModelName(model)}`
    const body = Buffer.from(JSON.stringify(x.admission.outgoing))
    const failures: string[] = []
    /** Retry-After of each peer that answered 429 (at its limit for this host). */
    const busy: number[] = []
    for (const cand of plan.peers) {
      const s = cand.state
      if (!s?.breaker.available()) continue
      let upstream: PeerUpstream
      try {
        upstream = this.upstreamFor(s)
      } catch (err) {
        failures.push(`${s.name}: ${errorMessage(err)}`)
        continue
      }
      // Only now take the right to send (the half-open trial): a peer we could not even address keeps it.
      if (!s.breaker.allow()) continue
      this.countRouted(s, model)
      const result = await forward({
        upstream,
        api: x.route.api,
        method: 'POST',
        path,
        body,
        headers: x.headers,
        res: x.res,
        signal: x.signal,
        headersTimeoutMs: x.headersTimeoutMs,
        failover: true,
        giveUp: s.reachable.signal,
        ...(x.transform ? { transform: x.transform } : {}),
      })
      const was = s.breaker.view().state
      const report = () => {
        // The dashboard sees a breaker open or close as it happens (peer_updated with `pool`).
        const rec = this.records.get(s.id)
        if (rec && s.breaker.view().state !== was) this.emit(rec)
      }
      if (result.retry) {
        // The proxy words its errors for Ollama; here the upstream is the peer's gateway.
        const why = result.retry.message
          .replace(/^Ollama is not running at \S+ \((.*?)\);.*$/s, 'not reachable ($1)')
          .replace(/^Ollama failed/, 'failed')
          .replace(/^Ollama at \S+ /, '')
        if (result.retry.code === 'RATE_LIMITED') {
          // It answered: alive, only at its limit for this host.
          busy.push(Number(result.retry.details?.retry_after) || 1)
          s.breaker.success()
        } else s.breaker.failure(why)
        failures.push(`${s.name}: ${why}`)
        report()
        this.o.log.warn(
          { peer: s.name, model, err: why },
          'pool: a peer failed before answering; trying the next',
        )
        if (x.signal.aborted || x.res.destroyed) return { ...result, via: null }
        continue
      }
      if (result.outcome === 'broken' || result.outcome === 'timeout') s.breaker.failure('broke mid-answer')
      else if (result.outcome !== 'aborted' && result.outcome !== 'client_closed') s.breaker.success()
      else s.breaker.release()
      report()
      this.remember(stickyKey, s.id)
      return { ...result, via: s.name }
    }
    if (plan.localFallback) return undefined
    if (busy.length > 0 && busy.length === failures.length) {
      // Every host tried is at its limit for this one: the device waits and tries again, as for a local 429.
      const limited = new SharedLLMError(
        'RATE_LIMITED',
        `every host of the pool that has '${model}' is at its limit for this host: ${failures.join('; ')}`,
        { details: { retry_after: Math.min(...busy) } },
      )
      sendGatewayError(x.res, x.route.api, limited)
      return { status: limited.status, outcome: 'unavailable', success: false, via: null }
    }
    const reopen = plan.peers
      .map((p) => p.state?.breaker.view().open_until ?? null)
      .filter((t): t is number => t !== null)
    const retryAfter = reopen.length ? Math.max(1, Math.ceil((Math.min(...reopen) - this.now()) / 1000)) : 5
    const err = new SharedLLMError(
      'UPSTREAM_UNAVAILABLE',
      failures.length
        ? `no host of the pool could serve '${model}': ${failures.join('; ')}`
        : `the hosts that have '${model}' (${plan.peers.map((p) => p.name).join(', ')}) failed repeatedly and are paused (circuit open); try again in ${retryAfter} s`,
      { details: { retry_after: retryAfter } },
    )
    sendGatewayError(x.res, x.route.api, err)
    return { status: err.status, outcome: 'unavailable', success: false, via: null }
  }

  // ---- lists -----------------------------------------------------------------------------------

  /**
   * `/ollama/api/tags` and `/v1/models`: adds the models of up peers that `principal` may use (its role's
   * list, its slice at the peer's estimate) and that this host does not list itself, each marked with the
   * host that serves it: `remote_host` on the native list (api/types.go ListModelResponse), `owned_by` on
   * /v1 (as Ollama's openai/openai.go fills it with the owner).
   */
  extendList(
    principal: Principal,
    kind: 'tags' | 'models',
    doc: Record<string, unknown>,
  ): Record<string, unknown> {
    if (this.o.settings.get('routing') === 'off' || isPeerPrincipal(principal)) return doc
    const listKey = kind === 'models' ? 'data' : 'models'
    const list = Array.isArray(doc[listKey]) ? [...(doc[listKey] as Array<Record<string, unknown>>)] : []
    const seen = new Set(
      list
        .map((e) => (kind === 'models' ? e.id : e.name))
        .filter((n): n is string => typeof n === 'string')
        .map(normaliseModelName),
    )
    const device = principal.kind === 'device' ? principal : undefined
    const ctx = device ? this.o.policy.contextFor(device.role) : this.o.settings.get('default_context_tokens')
    for (const s of this.states.values()) {
      if (!s.up || !s.status) continue
      for (const m of s.status.installed) {
        const key = normaliseModelName(m.name)
        if (seen.has(key)) continue
        if (device) {
          if (!modelAllowed(device.role.allowed_models, m.name)) continue
          const need = this.peerEstimate(s.status, m.name, ctx)
          if (need !== undefined && need > device.device.allocation_mb * MiB) continue
        }
        seen.add(key)
        if (kind === 'models') {
          const created = Math.floor(Date.parse(m.modified_at) / 1000)
          list.push({
            id: m.name,
            object: 'model',
            created: Number.isFinite(created) ? created : 0,
            owned_by: s.name,
          })
        } else {
          list.push({
            name: m.name,
            model: m.model,
            modified_at: m.modified_at,
            size: m.size,
            digest: m.digest,
            details: m.details,
            remote_host: s.name,
          })
        }
      }
    }
    return { ...doc, [listKey]: list }
  }

  // ---- GET /api/pool ---------------------------------------------------------------------------

  async poolView(principal: Principal): Promise<PoolResponse> {
    const catalog = this.o.catalog()
    const [installed, running] = catalog
      ? await Promise.all([catalog.list().catch(() => []), catalog.running().catch(() => [])])
      : [[], []]
    const owner = principal.kind !== 'device'
    const allowed = (name: string) =>
      principal.kind !== 'device' || modelAllowed(principal.role.allowed_models, name)
    const hosts: PoolHost[] = [
      {
        id: SELF,
        name: this.o.selfName(),
        self: true,
        up: this.o.ollamaRunning(),
        version: this.o.version,
        free_mb: this.o.freeMb() ?? null,
        total_mb: this.o.totalMb() ?? null,
        latency_ms: 0,
        breaker: null,
        last_error: null,
        installed: installed.map((m) => m.name).filter(allowed),
        loaded: running.map((m) => m.name).filter(allowed),
      },
    ]
    for (const s of this.states.values()) {
      hosts.push({
        id: s.id,
        name: s.name,
        self: false,
        up: s.up,
        version: s.status?.version ?? null,
        free_mb: s.status?.free_mb ?? null,
        total_mb: s.status?.total_mb ?? null,
        latency_ms: s.latencyMs === null ? null : Math.round(s.latencyMs * 10) / 10,
        // Failures name addresses and ports: the owner's to read, not a device's.
        breaker: owner ? s.breaker.view() : { ...s.breaker.view(), last_failure: null },
        last_error: owner ? s.lastError : null,
        installed: (s.status?.installed ?? []).map((m) => m.name).filter(allowed),
        loaded: (s.status?.loaded ?? []).map((m) => m.name).filter(allowed),
      })
    }
    const byModel = new Map<
      string,
      { name: string; hosts: Array<{ id: string; name: string; loaded: boolean }> }
    >()
    for (const h of hosts) {
      const loaded = new Set(h.loaded.map(normaliseModelName))
      for (const name of h.installed) {
        const key = normaliseModelName(name)
        let entry = byModel.get(key)
        if (!entry) {
          entry = { name, hosts: [] }
          byModel.set(key, entry)
        }
        entry.hosts.push({ id: h.id, name: h.name, loaded: loaded.has(key) })
      }
    }
    return {
      routing: this.o.settings.get('routing'),
      hosts,
      models: [...byModel.values()].sort((a, b) => a.name.localeCompare(b.name)),
    }
  }
}

/** What a peer is told of this host's waits: whole ms within the schema's bounds, at most 500 models. */
function boundWaits(waits: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {}
  for (const [model, ms] of Object.entries(waits).slice(0, 500)) {
    if (Number.isFinite(ms)) out[model] = Math.min(QUEUE_WAIT_MAX_MS, Math.max(0, Math.round(ms)))
  }
  return out
}

import { chmod } from 'node:fs/promises'
import { join } from 'node:path'
import type { Knex } from 'knex'
import type { SettingsService } from '../domain/settings'
import { errorMessage, isSharedLLMError, SharedLLMError } from '../errors'
import type { EventBus } from '../events'
import type { Logger } from '../logger'
import type { Peer } from '../protocol/types'
import { DB_FILE_NAME } from '../store/db'
import { type PeerRecord, peersRepo, toPeer } from '../store/peers'
import type { JoinResponse } from '../protocol/api'
import { normalizeFingerprint } from '../tls/fingerprint'
import { fetchPeerCa } from '../tls/pin'
import { pinnedFetch } from '../tls/pinned-fetch'
import { baseUrl, PeerClient } from './peer-client'

/** First wait before an auto-join that could not reach the host is tried again; doubles up to 60 s. */
const AUTO_JOIN_RETRY_MS = 1000

/** A peer row with the CA pinned at first join (migration 005); absent fields mean "not pinned". */
interface PinnedPeer extends PeerRecord {
  ca_pem?: string | null
  ca_fingerprint?: string | null
  https_port?: number | null
}

export interface PeersServiceOptions {
  db: () => Knex
  bus: EventBus
  log: Logger
  /** This host's name, sent with join requests. */
  selfName: () => string
  instanceId: string
  fetch?: typeof fetch
  /** When given, `auto_join_discovered_hosts` files join requests to newly discovered hosts. */
  settings?: SettingsService
  /** When given, a claimed key is only kept after the data dir is 0700 and the database 0600. */
  dataDir?: string
  /** How often a waiting join request is polled. @default 3000 */
  pollIntervalMs?: number
  /** Per HTTP call to a peer. @default 5000 */
  timeoutMs?: number
  now?: () => number
}

/**
 * Other sharedLLM hosts this instance discovered, and joining them: files a join request (carrying our
 * instance id, so the remote host keeps one device for us), polls until the remote owner decides, claims
 * the key once and keeps it, then lists the remote models through the remote gateway.
 *
 * Trust on first use: when the peer serves HTTPS, its CA is downloaded and pinned at the first join, and
 * every call from then on (the join itself, the claim that the remote owner's approval unlocks, the models)
 * goes over HTTPS trusting that CA alone; a different CA later is CERTIFICATE_MISMATCH, never a downgrade.
 */
export class PeersService {
  private readonly client: PeerClient
  private readonly now: () => number
  private readonly pollIntervalMs: number
  private readonly polls = new Map<string, NodeJS.Timeout>()
  private readonly inFlight = new Set<string>()
  /** Peers whose last auto-join could not reach them, with the number of tries so far. */
  private readonly unreachable = new Map<string, number>()
  private readonly retries = new Map<string, NodeJS.Timeout>()
  /** Of those, the ones that went offline since: their return triggers a try at once. */
  private readonly offline = new Set<string>()
  private readonly verifying = new Set<string>()
  private readonly abort = new AbortController()
  private readonly unsubscribe: Array<() => void> = []
  private stopped = false

  constructor(private readonly o: PeersServiceOptions) {
    this.client = new PeerClient({ fetch: o.fetch, ...(o.timeoutMs ? { timeoutMs: o.timeoutMs } : {}) })
    this.now = o.now ?? Date.now
    this.pollIntervalMs = o.pollIntervalMs ?? 3000
    // An advert moved a peer we hold a secret for: check the new addresses against the pinned CA.
    this.unsubscribe.push(o.bus.on('peer_updated', ({ peer }) => void this.checkProposed(peer.id)))
    if (o.settings) {
      // Keyed on the peer row, not on the device: the other host's own join request may have created its
      // device here before our browser saw its advert, and then no device is "discovered" at all.
      this.unsubscribe.push(
        o.bus.on('peer_updated', ({ peer }) => {
          if (!peer.online) {
            if (this.unreachable.has(peer.id)) this.offline.add(peer.id)
          } else if (peer.status === 'discovered' || this.offline.delete(peer.id)) {
            // Newly seen, or back online after an auto-join that could not reach it: (try to) join now.
            void this.autoJoin(peer.instance_id)
          }
        }),
        o.bus.on('setting_changed', ({ key, value }) => {
          if (key === 'auto_join_discovered_hosts' && value === true) void this.autoJoinAll()
        }),
      )
    }
  }

  async list(): Promise<Peer[]> {
    return (await peersRepo.list(this.o.db())).map(toPeer)
  }

  async get(id: string): Promise<Peer> {
    return toPeer(await this.record(id))
  }

  /**
   * Files a join request to the peer and returns at once with status `pending` (or `joined` when the remote
   * host approves on the spot); a background poll claims the key once the remote owner approves.
   * Already waiting: returns the peer as it is. Already joined: CONFLICT.
   */
  async join(id: string): Promise<Peer> {
    const peer = await this.record(id)
    if (peer.status === 'joined' && peer.device_key) {
      throw new SharedLLMError(
        'CONFLICT',
        `already joined '${peer.name}'; its models are listed under this peer`,
      )
    }
    if (peer.status === 'pending' || peer.status === 'joining' || this.inFlight.has(id)) return toPeer(peer)
    this.inFlight.add(id)
    try {
      await this.patch(peer, { status: 'joining', error: null })
      let res: JoinResponse
      try {
        await this.pin(peer)
        res = await this.onAnyAddress(peer, (client, base) =>
          client.join(
            base,
            { name: this.o.selfName(), platform: 'sharedLLM', instance_id: this.o.instanceId },
            this.abort.signal,
          ),
        )
      } catch (err) {
        await this.patch(peer, { status: 'failed', error: errorMessage(err) })
        throw err
      }
      const filed = await this.patch(peer, {
        status: res.status === 'denied' || res.status === 'revoked' ? 'denied' : 'pending',
        join_request_id: res.request_id,
        claim_secret: res.claim_secret,
        remote_device_id: res.device_id,
        // Where it was when we paired: the only addresses the claim secret and key go to over plain HTTP.
        paired_addresses: peer.addresses,
        proposed_addresses: null,
        error: null,
      })
      if (filed.status === 'pending') {
        // Approved on the spot (trusted LAN or an earlier approval): claim now, else wait for the owner.
        if (res.status === 'approved') await this.poll(id)
        else this.schedulePoll(id)
      }
      return toPeer(await this.record(id))
    } finally {
      this.inFlight.delete(id)
    }
  }

  /** The remote host's models, through its gateway with our key (filtered there by our role). */
  async models(id: string): Promise<unknown[]> {
    const peer = await this.record(id)
    const key = peer.device_key
    if (!key) {
      throw new SharedLLMError(
        'CONFLICT',
        `no key for '${peer.name}' yet (status ${peer.status}); join it and wait for its owner to approve`,
      )
    }
    try {
      return await this.onAnyAddress(peer, (client, base) => client.models(base, key, this.abort.signal), {
        secret: true,
      })
    } catch (err) {
      if (isSharedLLMError(err, 'FORBIDDEN')) {
        await this.patch(peer, { error: `'${peer.name}' refused our key; it may have been revoked` })
      } else if (isSharedLLMError(err, 'CERTIFICATE_MISMATCH')) {
        await this.patch(peer, { error: errorMessage(err) })
      }
      throw err
    }
  }

  /** Resumes polling the join requests that were waiting when the process last stopped. */
  async resume(): Promise<void> {
    for (const peer of await peersRepo.listByStatus(this.o.db(), ['pending', 'joining'])) {
      if (peer.status === 'joining')
        await this.patch(peer, { status: 'failed', error: 'interrupted; join again' })
      else this.schedulePoll(peer.id, 0)
    }
  }

  stop(): void {
    this.stopped = true
    this.abort.abort()
    for (const t of [...this.polls.values(), ...this.retries.values()]) clearTimeout(t)
    this.polls.clear()
    this.retries.clear()
    for (const off of this.unsubscribe.splice(0)) off()
  }

  /**
   * Joins a discovered host on its own. A host that cannot be reached yet (it advertises a moment before it
   * listens, or its Wi-Fi dropped) is tried again with backoff (1 s, 2 s, 4 s … 60 s) while it stays online
   * and auto-join stays on; any other failure (a refusal, a bad answer, another CA) waits for the owner.
   */
  private async autoJoin(instanceId: string): Promise<void> {
    let peerId: string | undefined
    try {
      if (this.stopped || !this.o.settings?.get('auto_join_discovered_hosts')) return
      const peer = await peersRepo.findByInstanceId(this.o.db(), instanceId)
      if (!peer?.online) return
      peerId = peer.id
      const retry = peer.status === 'failed' && this.unreachable.has(peer.id)
      if (peer.status !== 'discovered' && !retry) return
      await this.join(peer.id)
      this.unreachable.delete(peer.id)
      this.offline.delete(peer.id)
    } catch (err) {
      // Background: the failure is on the peer (status failed, error) and in the log, never thrown.
      this.o.log.warn({ err, instance_id: instanceId }, 'auto-join failed')
      if (!peerId || this.stopped) return
      if (isSharedLLMError(err, 'UPSTREAM_UNAVAILABLE') || isSharedLLMError(err, 'TIMEOUT')) {
        const delay = this.retryAutoJoin(peerId, instanceId)
        if (delay !== undefined) await this.sayRetrying(peerId, delay)
      } else {
        this.unreachable.delete(peerId)
        this.offline.delete(peerId)
      }
    }
  }

  /** Adds "trying again in N s" to the peer's error, so the owner sees it is not given up on. Never throws. */
  private async sayRetrying(peerId: string, delayMs: number): Promise<void> {
    try {
      const peer = await peersRepo.get(this.o.db(), peerId)
      if (peer?.status !== 'failed') return
      await this.patch(peer, {
        error: `${peer.error ?? 'not reachable'}; trying again in ${Math.round(delayMs / 1000)} s`,
      })
    } catch (err) {
      this.o.log.warn({ err }, 'could not record the auto-join retry on the peer')
    }
  }

  /** Schedules the next try; returns its delay in ms, or undefined when one is already scheduled. */
  private retryAutoJoin(peerId: string, instanceId: string): number | undefined {
    if (this.stopped || this.retries.has(peerId)) return undefined
    const tries = (this.unreachable.get(peerId) ?? 0) + 1
    this.unreachable.set(peerId, tries)
    const delay = Math.min(60_000, AUTO_JOIN_RETRY_MS * 2 ** (tries - 1))
    const timer = setTimeout(() => {
      this.retries.delete(peerId)
      void this.autoJoin(instanceId)
    }, delay)
    timer.unref()
    this.retries.set(peerId, timer)
    return delay
  }

  private async autoJoinAll(): Promise<void> {
    try {
      for (const peer of await peersRepo.listByStatus(this.o.db(), ['discovered'])) {
        await this.autoJoin(peer.instance_id)
      }
    } catch (err) {
      this.o.log.warn({ err }, 'auto-join failed')
    }
  }

  private schedulePoll(id: string, delay = this.pollIntervalMs): void {
    if (this.stopped || this.polls.has(id)) return
    const timer = setTimeout(() => {
      this.polls.delete(id)
      void this.poll(id)
    }, delay)
    timer.unref()
    this.polls.set(id, timer)
  }

  /** One claim poll. Background work: every failure ends up on the peer row, never thrown. */
  private async poll(id: string): Promise<void> {
    if (this.stopped) return
    let peer: PeerRecord | undefined
    try {
      peer = await peersRepo.get(this.o.db(), id)
      if (peer?.status !== 'pending' || !peer.join_request_id || !peer.claim_secret) return
      const { join_request_id: requestId, claim_secret: secret } = peer
      const res = await this.onAnyAddress(
        peer,
        (client, base) => client.claim(base, requestId, secret, this.abort.signal),
        { secret: true },
      )
      if (peer.remote_device_id && res.device_id !== peer.remote_device_id) {
        throw new SharedLLMError(
          'CONFLICT',
          `'${peer.name}' answered the claim for another device than the one it filed; join again`,
        )
      }
      if (res.status === 'pending') {
        if (peer.error) await this.patch(peer, { error: null })
        this.schedulePoll(id)
      } else if (res.status === 'approved' && res.device_key) {
        await this.keepPrivate()
        await this.patch(peer, {
          status: 'joined',
          device_key: res.device_key,
          remote_device_id: res.device_id,
          claim_secret: null,
          error: null,
        })
        this.o.log.info({ peer: peer.name }, 'joined peer host')
      } else if (res.status === 'approved') {
        await this.patch(peer, { status: 'failed', error: 'approved, but the host sent no key; join again' })
      } else {
        await this.patch(peer, {
          status: 'denied',
          claim_secret: null,
          error: `the owner of '${peer.name}' said no`,
        })
      }
    } catch (err) {
      if (this.stopped || !peer) return
      if (
        isSharedLLMError(err, 'GONE') ||
        isSharedLLMError(err, 'NOT_FOUND') ||
        isSharedLLMError(err, 'FORBIDDEN') ||
        isSharedLLMError(err, 'CERTIFICATE_MISMATCH') ||
        isSharedLLMError(err, 'CONFLICT')
      ) {
        await this.patch(peer, { status: 'failed', claim_secret: null, error: errorMessage(err) }).catch(
          () => {},
        )
        return
      }
      // Unreachable or busy: keep waiting, and say why on the peer.
      await this.patch(peer, { error: errorMessage(err) }).catch(() => {})
      this.schedulePoll(id)
    }
  }

  /**
   * Pins the peer's CA on first contact when it serves HTTPS: its `/api/tls` names the fingerprint and the
   * CA downloaded from `/ca.crt` must match it. Already pinned, or an HTTP-only host: nothing to do.
   */
  private async pin(peer: PinnedPeer): Promise<void> {
    if (peer.ca_fingerprint) return
    const found = await this.onAnyAddress(peer, async (client, base) => {
      const info = await client.tls(base, this.abort.signal)
      if (!info?.https_port || !info.ca_fingerprint) return null
      const ca = await fetchPeerCa(`${base}/ca.crt`, {
        expectedFingerprint: info.ca_fingerprint,
        ...(this.o.timeoutMs ? { timeoutMs: this.o.timeoutMs } : {}),
        signal: this.abort.signal,
      })
      return { ca, httpsPort: info.https_port }
    })
    if (!found) return
    const pinned: Partial<PinnedPeer> = {
      ca_pem: found.ca.pem,
      ca_fingerprint: found.ca.fingerprint,
      https_port: found.httpsPort,
    }
    await this.patch(peer, pinned)
    this.o.log.info({ peer: peer.name, fingerprint: found.ca.fingerprint }, 'pinned the CA of a peer host')
  }

  /** Over HTTPS with the pinned CA once there is one; plain HTTP only for a peer that never offered HTTPS. */
  private transport(peer: PinnedPeer): { client: PeerClient; scheme: 'http' | 'https'; port: number } {
    if (peer.ca_pem && peer.ca_fingerprint && peer.https_port) {
      const client = new PeerClient({
        fetch: pinnedFetch({ caPem: peer.ca_pem, caFingerprint: peer.ca_fingerprint }),
        ...(this.o.timeoutMs ? { timeoutMs: this.o.timeoutMs } : {}),
      })
      return { client, scheme: 'https', port: peer.https_port }
    }
    return { client: this.client, scheme: 'http', port: peer.port }
  }

  /**
   * Tries the peer's addresses in order; moves on only when one cannot be reached. A call that carries a
   * secret (`secret`: the claim secret, the key) over plain HTTP goes only to an address the peer had when
   * we paired: over HTTP nothing else proves that the host there is the peer.
   */
  private async onAnyAddress<T>(
    peer: PinnedPeer,
    fn: (client: PeerClient, base: string) => Promise<T>,
    o: { secret?: boolean } = {},
  ): Promise<T> {
    const { client, scheme, port } = this.transport(peer)
    const paired = peer.paired_addresses
    const addresses =
      o.secret && scheme === 'http' && paired
        ? peer.addresses.filter((a) => paired.includes(a))
        : peer.addresses
    let last: unknown = new SharedLLMError(
      'UPSTREAM_UNAVAILABLE',
      addresses.length < peer.addresses.length
        ? `'${peer.name}' is not at an address it had when we paired, and it never offered HTTPS; join it again`
        : `'${peer.name}' has no known address`,
    )
    for (const address of addresses) {
      try {
        return await fn(client, baseUrl(address, port, scheme))
      } catch (err) {
        last = err
        if (!isSharedLLMError(err, 'UPSTREAM_UNAVAILABLE') && !isSharedLLMError(err, 'TIMEOUT')) throw err
      }
    }
    throw last
  }

  /**
   * A peer we hold a secret for was advertised at new addresses: the ones that answer over HTTPS with a
   * certificate from its pinned CA (and name the same CA) become its addresses; the rest are ignored. A peer
   * that never offered HTTPS cannot prove a move and stays where it was paired. Never throws.
   */
  private async checkProposed(peerId: string): Promise<void> {
    if (this.stopped || this.verifying.has(peerId)) return
    this.verifying.add(peerId)
    try {
      const peer = (await peersRepo.get(this.o.db(), peerId)) as PinnedPeer | undefined
      const proposed = peer?.proposed_addresses
      if (!peer || !proposed?.length) return
      if (!peer.ca_pem || !peer.ca_fingerprint || !peer.https_port) return
      const { client } = this.transport(peer)
      const proven: string[] = []
      for (const address of proposed) {
        if (peer.addresses.includes(address)) {
          proven.push(address)
          continue
        }
        try {
          const info = await client.tls(baseUrl(address, peer.https_port, 'https'), this.abort.signal)
          if (
            info?.ca_fingerprint &&
            normalizeFingerprint(info.ca_fingerprint) === normalizeFingerprint(peer.ca_fingerprint)
          )
            proven.push(address)
        } catch (err) {
          this.o.log.warn(
            { peer: peer.name, address, err: errorMessage(err) },
            'a new address of a peer did not prove its pinned CA',
          )
        }
      }
      if (this.stopped) return
      if (proven.some((a) => !peer.addresses.includes(a))) {
        await this.patch(peer, { addresses: proven, proposed_addresses: null })
        this.o.log.info(
          { peer: peer.name, addresses: proven },
          'a peer moved; its new address presented the pinned CA',
        )
      }
    } catch (err) {
      this.o.log.warn({ err }, 'checking the new addresses of a peer failed')
    } finally {
      this.verifying.delete(peerId)
    }
  }

  private async keepPrivate(): Promise<void> {
    if (!this.o.dataDir) return
    await chmod(this.o.dataDir, 0o700)
    await chmod(join(this.o.dataDir, DB_FILE_NAME), 0o600)
  }

  private async record(id: string): Promise<PeerRecord> {
    const peer = typeof id === 'string' && id.length <= 200 ? await peersRepo.get(this.o.db(), id) : undefined
    if (!peer)
      throw new SharedLLMError('NOT_FOUND', `peer '${String(id).slice(0, 200)}' not found`, {
        details: { id },
      })
    return peer
  }

  private async patch(peer: PeerRecord, patch: Partial<PinnedPeer>): Promise<PeerRecord> {
    const next = { ...peer, ...patch, updated_at: this.now() }
    await peersRepo.update(this.o.db(), peer.id, { ...patch, updated_at: next.updated_at })
    Object.assign(peer, next)
    this.o.bus.emit('peer_updated', { peer: toPeer(next) })
    return next
  }
}

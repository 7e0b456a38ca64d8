import { randomUUID } from 'node:crypto'
import type { Knex } from 'knex'
import { RateLimiter } from '../access/rate-limit'
import type { DevicesService } from '../domain/devices'
import type { SettingsService } from '../domain/settings'
import { errorMessage } from '../errors'
import type { EventBus } from '../events'
import type { Logger } from '../logger'
import type { Device } from '../protocol/types'
import { auditRepo } from '../store/audit'
import { type PeerRecord, peersRepo, toPeer } from '../store/peers'
import type { Sighting } from './records'

export interface DiscoveryRegistryOptions {
  bus: EventBus
  log: Logger
  db: () => Knex
  devices: DevicesService
  settings: SettingsService
  instanceId: string
  /** New devices/peers created per minute at most; more adverts of unknown ids wait for a later one. @default 10 */
  newEntriesPerMinute?: number
  now?: () => number
}

export type SightingOutcome = 'self' | 'created' | 'trusted' | 'updated' | 'rate_limited'

const ACTOR = 'mdns'
/** Distinct instance ids queued at once; beyond it a burst is dropped (adverts repeat anyway). */
const MAX_WAITING = 64

/**
 * Maps mDNS sightings onto devices and peers. Serialises the work per process, so a burst of adverts for
 * the same instance id cannot create two entries, and a flood of new ids is capped per minute.
 */
export class DiscoveryRegistry {
  private readonly limiter: RateLimiter
  private readonly now: () => number
  private queue: Promise<unknown> = Promise.resolve()
  private readonly waiting = new Map<string, { sighting: Sighting; promise: Promise<SightingOutcome> }>()

  constructor(private readonly o: DiscoveryRegistryOptions) {
    this.now = o.now ?? Date.now
    this.limiter = new RateLimiter(o.newEntriesPerMinute ?? 10, 60_000, this.now)
  }

  /**
   * Records a sighting; resolves with what it did. Store failures reject (the caller reports them).
   * Sightings of an id already waiting in the queue replace it, so a packet flood cannot grow the queue.
   */
  seen(s: Sighting): Promise<SightingOutcome> {
    const waiting = this.waiting.get(s.instance_id)
    if (waiting) {
      waiting.sighting = s
      return waiting.promise
    }
    if (this.waiting.size >= MAX_WAITING) return Promise.resolve('rate_limited')
    const entry = { sighting: s, promise: Promise.resolve<SightingOutcome>('updated') }
    entry.promise = this.serial(() => {
      this.waiting.delete(s.instance_id)
      return this.apply(entry.sighting)
    })
    this.waiting.set(s.instance_id, entry)
    return entry.promise
  }

  /** The instance left (goodbye or expiry): its device and peer go offline. */
  gone(instanceId: string): Promise<void> {
    return this.serial(async () => {
      const device = await this.o.devices.findByInstanceId(instanceId)
      if (device) await this.o.devices.markOffline(device.id)
      const peer = await peersRepo.findByInstanceId(this.o.db(), instanceId)
      if (peer?.online) {
        await peersRepo.update(this.o.db(), peer.id, { online: false, updated_at: this.now() })
        this.o.bus.emit('peer_updated', { peer: toPeer({ ...peer, online: false }) })
      }
    })
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn)
    this.queue = run.catch(() => {})
    return run
  }

  private async apply(s: Sighting): Promise<SightingOutcome> {
    if (s.instance_id === this.o.instanceId) return 'self'
    const db = this.o.db()
    const existing = await this.o.devices.findByInstanceId(s.instance_id)
    const existingPeer = await peersRepo.findByInstanceId(db, s.instance_id)
    if (!existing && !existingPeer && this.limiter.hit('new') > 0) {
      this.o.log.warn({ instance_id: s.instance_id }, 'mDNS: too many new hosts this minute; ignoring one')
      return 'rate_limited'
    }

    let outcome: SightingOutcome = 'updated'
    let device: Device
    if (existing) {
      device = await this.o.devices.markSeen(existing.id, { ip: s.addresses[0] ?? null })
    } else {
      const trusted = this.o.settings.get('trust_local_network')
      const created = await this.createDevice(s, trusted)
      device = created.device
      outcome = created.trusted ? 'trusted' : 'created'
    }
    await this.upsertPeer(s, existingPeer)

    if (outcome !== 'updated') {
      this.o.bus.emit('device_discovered', { device, addresses: s.addresses })
      if (outcome === 'trusted') this.o.bus.emit('device_approved', { device })
      else this.o.bus.emit('device_pending_approval', { device })
    }
    return outcome
  }

  /** A new pending device; approved with default_role in the same transaction when the LAN is trusted. */
  private async createDevice(s: Sighting, trusted: boolean): Promise<{ device: Device; trusted: boolean }> {
    const input = {
      name: s.name,
      source: 'mdns' as const,
      ip: s.addresses[0] ?? null,
      platform: s.version ? `sharedLLM ${s.version}` : 'sharedLLM',
      instance_id: s.instance_id,
    }
    if (trusted) {
      const roleId = this.o.settings.get('default_role')
      try {
        const device = await this.o.db().transaction(async (trx) => {
          const pending = await this.o.devices.insert(trx, input, ACTOR)
          const approved = await this.o.devices.approveIn(trx, pending.id, roleId, ACTOR)
          await auditRepo.add(trx, {
            at: this.now(),
            actor: ACTOR,
            action: 'device.auto_approve',
            target: approved.id,
            before: null,
            after: { reason: 'trust_local_network', role_id: roleId, instance_id: s.instance_id },
          })
          return approved
        })
        return { device, trusted: true }
      } catch (err) {
        // A missing default role must not lose the discovery: fall back to a pending device.
        this.o.log.warn({ err, role: roleId }, 'mDNS: trust_local_network approval failed; left pending')
        this.o.bus.emit('discovery_error', {
          message: `could not auto-approve '${s.name}' with default_role '${roleId}': ${errorMessage(err)}`,
        })
      }
    }
    const device = await this.o.db().transaction((trx) => this.o.devices.insert(trx, input, ACTOR))
    return { device, trusted: false }
  }

  private async upsertPeer(s: Sighting, existing: PeerRecord | undefined): Promise<void> {
    const db = this.o.db()
    const now = this.now()
    if (!existing) {
      const peer: PeerRecord = {
        id: randomUUID(),
        instance_id: s.instance_id,
        name: s.name,
        addresses: s.addresses,
        port: s.port,
        version: s.version,
        last_seen: now,
        online: true,
        status: 'discovered',
        device_key: null,
        join_request_id: null,
        claim_secret: null,
        remote_device_id: null,
        paired_addresses: null,
        proposed_addresses: null,
        error: null,
        created_at: now,
        updated_at: now,
      }
      await peersRepo.insert(db, peer)
      this.o.bus.emit('peer_updated', { peer: toPeer(peer) })
      return
    }
    // A peer we hold a secret for (a key, a claim secret, a pinned CA) is not moved by an advert, which
    // anyone on the LAN can send: the new addresses wait aside until they answer with the pinned certificate.
    const bound = holdsSecret(existing)
    const moved = existing.addresses.join() !== s.addresses.join()
    const proposed = bound && moved ? s.addresses : null
    const proposalChanged = (existing.proposed_addresses ?? null)?.join() !== proposed?.join()
    const changed =
      !existing.online ||
      existing.name !== s.name ||
      (!bound && existing.port !== s.port) ||
      existing.version !== s.version ||
      (!bound && moved) ||
      proposalChanged
    const patch: Partial<PeerRecord> = { last_seen: now, online: true }
    if (changed)
      Object.assign(patch, {
        name: s.name,
        version: s.version,
        ...(bound ? { proposed_addresses: proposed } : { port: s.port, addresses: s.addresses }),
        updated_at: now,
      })
    if (proposed && proposalChanged) {
      this.o.log.warn(
        { peer: existing.name, addresses: existing.addresses, advertised: proposed },
        'mDNS: a paired peer advertised new addresses; they are used only once they present its pinned certificate',
      )
    }
    await peersRepo.update(db, existing.id, patch)
    if (changed) this.o.bus.emit('peer_updated', { peer: toPeer({ ...existing, ...patch }) })
  }
}

/** Whether we hold something for this peer that an impostor at another address must not get. */
export function holdsSecret(p: PeerRecord & { ca_fingerprint?: string | null }): boolean {
  return p.device_key !== null || p.claim_secret !== null || !!p.ca_fingerprint
}

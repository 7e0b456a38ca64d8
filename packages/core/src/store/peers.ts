import type { Knex } from 'knex'
import type { Peer, PeerStatus } from '../protocol/types'

/** A peer row as stored, secrets included. Only core sees this; the API gets `Peer` (`has_key` instead). */
export interface PeerRecord extends Omit<Peer, 'has_key'> {
  device_key: string | null
  join_request_id: string | null
  claim_secret: string | null
  remote_device_id: string | null
  /**
   * The addresses the peer had when we filed our join (migration 007): the claim secret and the key go over
   * plain HTTP only to one of these. null before any join.
   */
  paired_addresses?: string[] | null
  /** Addresses a later advert named for a peer we hold a secret for; used once they prove the pinned CA. */
  proposed_addresses?: string[] | null
  created_at: number
  updated_at: number
}

interface PeerRow
  extends Omit<PeerRecord, 'addresses' | 'online' | 'paired_addresses' | 'proposed_addresses'> {
  addresses: string
  online: number | boolean
  paired_addresses?: string | null
  proposed_addresses?: string | null
}

function parseAddresses(s: string): string[] {
  try {
    const v = JSON.parse(s) as unknown
    return Array.isArray(v) ? v.filter((a): a is string => typeof a === 'string') : []
  } catch {
    return []
  }
}

function toRecord(row: PeerRow): PeerRecord {
  return {
    ...row,
    addresses: parseAddresses(row.addresses),
    paired_addresses: row.paired_addresses ? parseAddresses(row.paired_addresses) : null,
    proposed_addresses: row.proposed_addresses ? parseAddresses(row.proposed_addresses) : null,
    online: Boolean(row.online),
    port: Number(row.port),
    last_seen: row.last_seen === null ? null : Number(row.last_seen),
    created_at: Number(row.created_at),
    updated_at: Number(row.updated_at),
  }
}

function toRow(patch: Partial<PeerRecord>): Record<string, unknown> {
  const row: Record<string, unknown> = { ...patch }
  for (const key of ['addresses', 'paired_addresses', 'proposed_addresses'] as const) {
    const v = patch[key]
    if (v !== undefined) row[key] = v === null ? null : JSON.stringify(v)
  }
  return row
}

/** The public view: the key and claim secret stay behind. */
export function toPeer(r: PeerRecord): Peer {
  return {
    id: r.id,
    instance_id: r.instance_id,
    name: r.name,
    addresses: r.addresses,
    port: r.port,
    version: r.version,
    online: r.online,
    last_seen: r.last_seen,
    status: r.status,
    has_key: r.device_key !== null,
    error: r.error,
  }
}

export const peersRepo = {
  async list(db: Knex): Promise<PeerRecord[]> {
    return (await db<PeerRow>('peers').select().orderBy('created_at')).map(toRecord)
  },
  async get(db: Knex, id: string): Promise<PeerRecord | undefined> {
    const row = await db<PeerRow>('peers').where({ id }).first()
    return row ? toRecord(row) : undefined
  },
  async findByInstanceId(db: Knex, instanceId: string): Promise<PeerRecord | undefined> {
    const row = await db<PeerRow>('peers').where({ instance_id: instanceId }).first()
    return row ? toRecord(row) : undefined
  },
  async listByStatus(db: Knex, statuses: PeerStatus[]): Promise<PeerRecord[]> {
    return (await db<PeerRow>('peers').whereIn('status', statuses).orderBy('created_at')).map(toRecord)
  },
  async insert(db: Knex, peer: PeerRecord): Promise<void> {
    await db('peers').insert(toRow(peer))
  },
  async update(db: Knex, id: string, patch: Partial<PeerRecord>): Promise<void> {
    await db('peers').where({ id }).update(toRow(patch))
  },
}

import type { Knex } from 'knex'
import type { UsageRecord } from '../protocol/types'

export interface DeviceKeyRow {
  id: number
  device_id: string
  key_hash: string
  hint: string
  created_at: number
  revoked_at: number | null
}

export interface JoinRequestRow {
  id: string
  device_id: string
  claim_hash: string
  ip: string | null
  created_at: number
  claimed_at: number | null
}

export interface PairingCodeRow {
  id: number
  code_hash: string
  role_id: string
  attempts_left: number
  created_at: number
  expires_at: number
  used_at: number | null
  used_by: string | null
  /** The code's first letters (not secret); null for codes made before they had one. */
  code_id: string | null
}

export const adminRepo = {
  async secretHash(db: Knex): Promise<string | undefined> {
    const row = await db<{ secret_hash: string }>('admin_secret').orderBy('id', 'desc').first()
    return row?.secret_hash
  },
  async setSecretHash(db: Knex, hash: string, at: number): Promise<void> {
    await db('admin_secret').delete()
    await db('admin_secret').insert({ secret_hash: hash, created_at: at })
  },
  async addSession(
    db: Knex,
    tokenHash: string,
    kind: 'session' | 'login_link',
    at: number,
    expiresAt: number,
  ) {
    await db('admin_sessions').insert({ token_hash: tokenHash, kind, created_at: at, expires_at: expiresAt })
  },
  async findSession(db: Knex, tokenHash: string, kind: 'session' | 'login_link', now: number) {
    return (await db('admin_sessions')
      .where({ token_hash: tokenHash, kind })
      .andWhere('expires_at', '>', now)
      .first()) as { token_hash: string; expires_at: number } | undefined
  },
  async deleteSession(db: Knex, tokenHash: string): Promise<number> {
    return db('admin_sessions').where({ token_hash: tokenHash }).delete()
  },
  async deleteAllSessions(db: Knex): Promise<void> {
    await db('admin_sessions').delete()
  },
  async deleteExpired(db: Knex, now: number): Promise<void> {
    await db('admin_sessions').where('expires_at', '<=', now).delete()
  },
}

export const keysRepo = {
  async insert(db: Knex, row: Omit<DeviceKeyRow, 'id' | 'revoked_at'>): Promise<void> {
    await db('device_keys').insert({ ...row, revoked_at: null })
  },
  /** The live key with this hash, with its device. */
  async findLive(db: Knex, keyHash: string): Promise<DeviceKeyRow | undefined> {
    return db<DeviceKeyRow>('device_keys').where({ key_hash: keyHash }).whereNull('revoked_at').first()
  },
  async revokeAll(db: Knex, deviceId: string, at: number): Promise<number> {
    return db('device_keys').where({ device_id: deviceId }).whereNull('revoked_at').update({ revoked_at: at })
  },
  async everIssued(db: Knex, deviceId: string): Promise<boolean> {
    return !!(await db('device_keys').where({ device_id: deviceId }).first('id'))
  },
  async liveHint(db: Knex, deviceId: string): Promise<string | null> {
    const row = await db<DeviceKeyRow>('device_keys')
      .where({ device_id: deviceId })
      .whereNull('revoked_at')
      .first()
    return row?.hint ?? null
  },
}

export const joinRepo = {
  async insert(db: Knex, row: JoinRequestRow): Promise<void> {
    await db('join_requests').insert(row)
  },
  async get(db: Knex, id: string): Promise<JoinRequestRow | undefined> {
    return db<JoinRequestRow>('join_requests').where({ id }).first()
  },
  async existsFor(db: Knex, deviceId: string): Promise<boolean> {
    return !!(await db('join_requests').where({ device_id: deviceId }).first('id'))
  },
  async markClaimed(db: Knex, id: string, at: number): Promise<number> {
    return db('join_requests').where({ id }).whereNull('claimed_at').update({ claimed_at: at })
  },
}

export const pairingRepo = {
  async insert(db: Knex, row: Omit<PairingCodeRow, 'id' | 'used_at' | 'used_by'>): Promise<void> {
    await db('pairing_codes').insert({ ...row, used_at: null, used_by: null })
  },
  async liveIds(db: Knex, now: number): Promise<Set<string>> {
    const rows = await db<PairingCodeRow>('pairing_codes')
      .whereNull('used_at')
      .andWhere('expires_at', '>', now)
      .whereNotNull('code_id')
      .select('code_id')
    return new Set(rows.map((r) => r.code_id as string))
  },
  async findActive(db: Knex, codeHash: string, now: number): Promise<PairingCodeRow | undefined> {
    return db<PairingCodeRow>('pairing_codes')
      .where({ code_hash: codeHash })
      .whereNull('used_at')
      .andWhere('expires_at', '>', now)
      .andWhere('attempts_left', '>', 0)
      .first()
  },
  async markUsed(db: Knex, id: number, at: number, by: string): Promise<void> {
    await db('pairing_codes').where({ id }).update({ used_at: at, used_by: by })
  },
  /** A wrong code that names a live code's id costs that code (and only it) one attempt. */
  async spendAttempt(db: Knex, codeId: string, now: number): Promise<number> {
    return db('pairing_codes')
      .where({ code_id: codeId })
      .whereNull('used_at')
      .andWhere('expires_at', '>', now)
      .andWhere('attempts_left', '>', 0)
      .decrement('attempts_left', 1)
  },
}

export interface UsageTotalsRow {
  requests: number
  prompt_tokens: number
  completion_tokens: number
}

export const pendingRepo = {
  /** Devices that filed a join request and still wait for the owner. */
  async countWaiting(db: Knex): Promise<number> {
    const row = (await db('devices')
      .where({ status: 'pending' })
      .whereIn('source', ['join', 'peer'])
      .count({ n: '*' })
      .first()) as { n: number } | undefined
    return Number(row?.n ?? 0)
  },
  /** Ids of waiting join devices created before `before`. */
  async expired(db: Knex, before: number, limit = 500): Promise<string[]> {
    const rows = await db('devices')
      .where({ status: 'pending' })
      .whereIn('source', ['join', 'peer'])
      .andWhere('created_at', '<', before)
      .orderBy('created_at')
      .limit(limit)
      .select('id')
    return rows.map((r: { id: string }) => r.id)
  },
}

export const usageRepo = {
  async insert(db: Knex, rec: Omit<UsageRecord, 'id'>): Promise<number> {
    const [id] = await db('usage').insert(rec)
    return Number(id)
  },
  async totals(db: Knex, deviceId: string): Promise<UsageTotalsRow> {
    const row = (await db('usage')
      .where({ device_id: deviceId })
      .count({ requests: '*' })
      .sum({ prompt_tokens: 'prompt_tokens', completion_tokens: 'completion_tokens' })
      .first()) as Record<string, number | null> | undefined
    return {
      requests: Number(row?.requests ?? 0),
      prompt_tokens: Number(row?.prompt_tokens ?? 0),
      completion_tokens: Number(row?.completion_tokens ?? 0),
    }
  },
  async byDeviceModel(db: Knex) {
    const rows = (await db('usage')
      .leftJoin('devices', 'devices.id', 'usage.device_id')
      .groupBy('usage.device_id', 'usage.model')
      .select('usage.device_id as device_id', 'devices.name as device_name', 'usage.model as model')
      .count({ requests: '*' })
      .sum({ prompt_tokens: 'usage.prompt_tokens', completion_tokens: 'usage.completion_tokens' })) as Array<
      Record<string, string | number | null>
    >
    return rows.map((r) => ({
      device_id: (r.device_id as string | null) ?? null,
      device_name: (r.device_name as string | null) ?? null,
      model: (r.model as string | null) ?? null,
      requests: Number(r.requests ?? 0),
      prompt_tokens: Number(r.prompt_tokens ?? 0),
      completion_tokens: Number(r.completion_tokens ?? 0),
    }))
  },
  async recent(db: Knex, limit = 100): Promise<UsageRecord[]> {
    const rows = await db<UsageRecord>('usage').orderBy('id', 'desc').limit(limit)
    return rows.map((r) => ({ ...r, at: Number(r.at) }))
  },
}

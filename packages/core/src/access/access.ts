import { randomUUID } from 'node:crypto'
import type { Knex } from 'knex'
import { z } from 'zod'
import type { DomainContext } from '../domain/context'
import { audit, notFound, securityChanged } from '../domain/context'
import type { DevicesService } from '../domain/devices'
import { SharedLLMError } from '../errors'
import type { ClaimResponse, JoinResponse, PairingResponse } from '../protocol/api'
import type { Device, DuplicateName, Role } from '../protocol/types'
import { ADMIN_ROLE_ID } from '../protocol/types'
import { hasBidiControls, nameSkeleton, sanitizeName } from '../discovery/sanitize'
import { deviceNameSchema, hasControlCharacters, parseInput } from '../schemas'
import { joinRepo, keysRepo, pairingRepo, pendingRepo } from '../store/access'
import { devicesRepo } from '../store/devices'
import { rolesRepo } from '../store/roles'
import { peersRepo } from '../store/peers'
import { canonicalIp, sourceKey } from '../tls/addresses'
import type { AdminAuth } from './admin'
import { AuthBackoff, type BackoffOptions } from './backoff'
import { type JoinNoticeOptions, JoinNotices } from './notices'
import { RateLimiter } from './rate-limit'
import {
  DEVICE_KEY_PREFIX,
  hashToken,
  newPairingCode,
  newToken,
  normalisePairingCode,
  pairingIdOf,
  sameHash,
} from './tokens'

export type Principal = { kind: 'admin' } | { kind: 'device'; device: Device; role: Role; keyHint: string }

/** The owner, or a device whose role is the admin role: may manage devices and models. */
export function isAdmin(p: Principal | null | undefined): boolean {
  return !!p && (p.kind === 'admin' || p.role.id === ADMIN_ROLE_ID)
}

/**
 * The owner (admin secret or owner session), or an admin-role device the owner granted "manage": may change
 * settings and roles and other devices' keys. An admin-role device alone may not.
 */
export function isOwner(p: Principal | null | undefined): boolean {
  return !!p && (p.kind === 'admin' || (p.role.id === ADMIN_ROLE_ID && p.device.can_manage))
}

/** A name from anyone on the LAN: bidi controls refused, then the same sanitizer as mDNS names. */
const lanText = (max: number) =>
  z
    .string()
    .max(max * 4, `must be at most ${max} characters`)
    .refine(
      (s) => !hasBidiControls(s),
      'must not contain bidirectional control characters (they make a name read differently from what it is)',
    )
    .transform((s) => sanitizeName(s, max))

export const joinSchema = z.strictObject({
  name: lanText(64).pipe(deviceNameSchema),
  platform: lanText(64)
    .pipe(z.string().refine((s) => !hasControlCharacters(s), 'must contain only printable characters'))
    .optional(),
  pairing_code: z.string().trim().min(1).max(32, 'must be at most 32 characters').optional(),
  instance_id: z
    .string()
    .regex(/^[A-Za-z0-9-]{8,64}$/, 'must be 8–64 letters, digits or dashes')
    .optional(),
})

/** What `newToken(DEVICE_KEY_PREFIX)` makes; the admin secret has its own prefix. */
const DEVICE_KEY_SHAPE = new RegExp(`^${DEVICE_KEY_PREFIX}(?!admin_)[A-Za-z0-9_-]{43}$`)

export const PAIRING_TTL_MS = 10 * 60_000
export const PAIRING_ATTEMPTS = 5

export interface AccessOptions {
  /** Join requests per source (an IPv4 address or an IPv6 /64) per minute. @default 10 */
  joinsPerMinute?: number
  /** Join requests from the whole LAN per minute. @default 60 */
  globalJoinsPerMinute?: number
  /** Join requests waiting for the owner at once; more are refused until some are decided. @default 200 */
  maxPending?: number
  /** A join request still pending after this long is removed. @default one day */
  pendingTtlMs?: number
  /** How join notices are coalesced for the dashboard. */
  notices?: JoinNoticeOptions
  /** Wrong pairing codes: backoff per source and over the LAN. */
  pairingBackoff?: BackoffOptions
  /**
   * Whether discovered hosts are approved on sight (`trust_local_network`) and with which role: a host approved
   * that way keeps its approval when its first join request arrives. @default never trusted
   */
  trust?: () => { enabled: boolean; roleId: string }
  /** Claim polls per source per minute. @default 60 */
  claimsPerMinute?: number
}

/** Device keys, join requests and their claims, pairing codes, and who a bearer token belongs to. */
export class AccessService {
  readonly joinLimiter: RateLimiter
  readonly globalJoinLimiter: RateLimiter
  readonly claimLimiter: RateLimiter
  readonly pairingBackoff: AuthBackoff
  readonly notices: JoinNotices
  private readonly cache = new Map<string, { principal: Principal; at: number }>()

  constructor(
    private readonly ctx: DomainContext,
    private readonly devices: DevicesService,
    private readonly admin: AdminAuth,
    private readonly opts: AccessOptions = {},
  ) {
    this.joinLimiter = new RateLimiter(opts.joinsPerMinute ?? 10, 60_000, ctx.now)
    this.globalJoinLimiter = new RateLimiter(opts.globalJoinsPerMinute ?? 60, 60_000, ctx.now)
    this.claimLimiter = new RateLimiter(opts.claimsPerMinute ?? 60, 60_000, ctx.now)
    this.pairingBackoff = new AuthBackoff({
      what: 'pairing code',
      globalPerMinute: 30,
      log: ctx.log,
      now: ctx.now,
      ...opts.pairingBackoff,
    })
    this.notices = new JoinNotices(ctx.bus, { now: ctx.now, ...opts.notices })
    // Any change to a device or role may change what a key is allowed: drop cached principals.
    const clear = () => this.cache.clear()
    for (const type of [
      'device_approved',
      'device_denied',
      'device_revoked',
      'device_removed',
      'device_updated',
      'device_keys_revoked',
      'allocation_changed',
      'role_changed',
    ] as const) {
      ctx.bus.on(type, clear)
    }
  }

  /**
   * Who presents this bearer token: an approved device with a live key, the admin, or nobody. A token that
   * is not a live device key is a guess at the admin secret from `source` (its address): failures back off
   * per source and over the LAN (RATE_LIMITED while waiting), and are logged.
   */
  async authenticate(token: string | undefined | null, source = 'unknown'): Promise<Principal | null> {
    if (!token || token.length > 512) return null
    const device = token.startsWith(DEVICE_KEY_PREFIX) ? await this.deviceOf(token) : undefined
    if (device) return device
    // A device key that no longer works (revoked, rotated) is not a guess at the admin secret.
    if (DEVICE_KEY_SHAPE.test(token)) return null
    if (await this.admin.verifySecretFrom(token, source)) return { kind: 'admin' }
    return null
  }

  private async deviceOf(token: string): Promise<Principal | undefined> {
    const hash = hashToken(token)
    const cached = this.cache.get(hash)
    if (cached && this.ctx.now() - cached.at < 5_000) return cached.principal
    const db = this.ctx.db()
    const key = await keysRepo.findLive(db, hash)
    if (!key || !sameHash(hash, key.key_hash)) return undefined
    const device = await devicesRepo.get(db, key.device_id)
    if (device?.status !== 'approved' || !device.role_id) return undefined
    const role = await rolesRepo.get(db, device.role_id)
    if (!role) return undefined
    const principal: Principal = { kind: 'device', device, role, keyHint: key.hint }
    if (this.cache.size > 1000) this.cache.clear()
    this.cache.set(hash, { principal, at: this.ctx.now() })
    return principal
  }

  /** Creates a device key (revoking any older one) inside a transaction; returns the key, shown once. */
  private async issueKey(trx: Knex, deviceId: string): Promise<{ key: string; revoked: number }> {
    const key = newToken(DEVICE_KEY_PREFIX)
    const now = this.ctx.now()
    const revoked = await keysRepo.revokeAll(trx, deviceId, now)
    await keysRepo.insert(trx, {
      device_id: deviceId,
      key_hash: hashToken(key),
      hint: `${key.slice(0, DEVICE_KEY_PREFIX.length + 4)}…`,
      created_at: now,
    })
    return { key, revoked }
  }

  /** A new key for an approved device; the old one stops working at once. */
  async rotateKey(deviceId: string, actor = 'admin'): Promise<string> {
    const key = await this.ctx.db().transaction(async (trx) => {
      const device = await devicesRepo.get(trx, deviceId)
      if (!device) throw notFound('device', deviceId)
      if (device.status !== 'approved') {
        throw new SharedLLMError('CONFLICT', `device '${device.name}' is ${device.status}; approve it first`)
      }
      const { key } = await this.issueKey(trx, deviceId)
      await audit(trx, this.ctx, actor, 'device.rotate_key', deviceId, null, null)
      return key
    })
    this.ctx.bus.emit('device_keys_revoked', { device_id: deviceId })
    securityChanged(this.ctx, actor, 'device.rotate_key', deviceId)
    return key
  }

  keyHint(deviceId: string): Promise<string | null> {
    return keysRepo.liveHint(this.ctx.db(), deviceId)
  }

  /** Counts a hit for the source's key (an IPv6 host counts as its /64) and for the LAN. */
  private limit(limiter: RateLimiter, ip: string, what: string, global?: RateLimiter): void {
    const key = sourceKey(ip)
    const retryAfter = limiter.hit(key)
    if (retryAfter > 0) {
      throw new SharedLLMError('RATE_LIMITED', `too many ${what} from ${key}; try again in ${retryAfter} s`, {
        details: { retry_after: retryAfter },
      })
    }
    const all = global?.hit('lan') ?? 0
    if (all > 0) {
      this.ctx.log.warn({ what }, 'the global limit on join requests was reached')
      throw new SharedLLMError(
        'RATE_LIMITED',
        `too many ${what} on this network right now; try again in ${all} s`,
        { details: { retry_after: all } },
      )
    }
  }

  /** Removes join requests that waited longer than a day for the owner (audited, `device_removed`). */
  async expirePending(): Promise<number> {
    const before = this.ctx.now() - (this.opts.pendingTtlMs ?? 24 * 3600_000)
    const ids = await pendingRepo.expired(this.ctx.db(), before)
    let removed = 0
    for (const id of ids) {
      const device = await this.ctx.db().transaction(async (trx) => {
        const d = await devicesRepo.get(trx, id)
        if (d?.status !== 'pending') return undefined
        await devicesRepo.delete(trx, id)
        await audit(trx, this.ctx, 'system', 'device.expire', id, d, null)
        return d
      })
      if (device) {
        removed++
        this.ctx.bus.emit('device_removed', { device })
      }
    }
    if (removed > 0) this.ctx.log.info({ removed }, 'join requests older than a day expired')
    return removed
  }

  stop(): void {
    this.notices.stop()
  }

  /**
   * Files a join request from anyone on the LAN: a new pending device, approved at once by a valid pairing
   * code with the code's role.
   *
   * An approval belongs to the request the owner saw. A request naming the instance id of a device we already
   * have joins that device only when it proves to be that device (`bearer` is the device's live key), or when
   * that device is a discovered host that never joined and was never given a key: its first request then
   * becomes the one the owner decides on (a pending or denied host stays so; a host approved on sight by
   * `trust_local_network` keeps that approval while the setting is on and its role is still the trusted one).
   * Anything else (an instance id copied from an mDNS advert or a certificate profile) files a new pending
   * device and inherits nothing. The answer names only the requester's own device.
   */
  async join(input: unknown, ip: string, bearer?: string): Promise<JoinResponse> {
    this.limit(this.joinLimiter, ip, 'join requests', this.globalJoinLimiter)
    const data = parseInput(joinSchema, input, 'join request')
    const claimSecret = newToken()
    const requestId = randomUUID()
    const now = this.ctx.now()
    let created = false
    let approvedByCode = false
    let impersonated: string | undefined
    const codeHash =
      data.pairing_code === undefined ? undefined : hashToken(normalisePairingCode(data.pairing_code))
    const badCode = () =>
      new SharedLLMError(
        'FORBIDDEN',
        'pairing_code: the pairing code is wrong, used or expired; ask the host for a new one, or join without a code and wait for approval',
        { details: { field: 'pairing_code' } },
      )
    if (codeHash) {
      const wait = this.pairingBackoff.retryAfter(ip)
      if (wait > 0) {
        throw new SharedLLMError('RATE_LIMITED', `too many wrong pairing codes; try again in ${wait} s`, {
          details: { retry_after: wait, field: 'pairing_code' },
        })
      }
    }
    if (codeHash && !(await pairingRepo.findActive(this.ctx.db(), codeHash, now))) {
      // Counted per source, and against the one live code the try names by its id (never every code).
      // Outside any transaction, so the spent attempt is not rolled back with the refused join.
      this.pairingBackoff.fail(ip)
      const code = normalisePairingCode(data.pairing_code as string)
      await pairingRepo.spendAttempt(this.ctx.db(), pairingIdOf(code), now)
      throw badCode()
    }
    await this.expirePending()
    const device = await this.ctx.db().transaction(async (trx) => {
      const code = codeHash ? await pairingRepo.findActive(trx, codeHash, now) : undefined
      if (codeHash && !code) throw badCode() // used by a concurrent join a moment ago
      const known = data.instance_id ? await devicesRepo.findByInstanceId(trx, data.instance_id) : undefined
      let device = known && (await this.mayJoinAs(trx, known, bearer, ip)) ? known : undefined
      if (known && !device) impersonated = known.id
      if (!device) {
        // A pairing code is the owner's own approval: it is not held back by requests nobody decided yet.
        if (!code && (await pendingRepo.countWaiting(trx)) >= (this.opts.maxPending ?? 200)) {
          throw new SharedLLMError(
            'RATE_LIMITED',
            'too many join requests are waiting for the owner; try again later, or ask the owner for a pairing code',
            { details: { retry_after: 600 } },
          )
        }
        device = await this.devices.insert(
          trx,
          {
            name: data.name,
            ip,
            platform: data.platform ?? null,
            source: data.instance_id ? 'peer' : 'join',
            // The instance id stays with the device that holds it; an unproven claim to it is not recorded.
            instance_id: known ? null : (data.instance_id ?? null),
          },
          'join',
        )
        created = true
      }
      await joinRepo.insert(trx, {
        id: requestId,
        device_id: device.id,
        claim_hash: hashToken(claimSecret),
        ip,
        created_at: now,
        claimed_at: null,
      })
      if (code && device.status !== 'approved' && device.status !== 'denied') {
        device = await this.devices.approveIn(trx, device.id, code.role_id, 'pairing')
        await pairingRepo.markUsed(trx, code.id, now, device.id)
        approvedByCode = true
      }
      return device
    })
    if (approvedByCode) {
      this.pairingBackoff.succeed(ip)
      this.ctx.bus.emit('device_approved', { device })
    } else if (device.status === 'pending') this.notices.announce(device, await this.duplicatesOf(device))
    if (impersonated) {
      this.ctx.log.warn(
        { device: device.id, claimed_instance_of: impersonated, ip },
        'a join request named the instance id of a known device without proving it; filed as a new device',
      )
    } else if (!created) this.ctx.log.info({ device: device.id }, 'join request for a known peer device')
    return { request_id: requestId, claim_secret: claimSecret, device_id: device.id, status: device.status }
  }

  /**
   * Other devices whose names read the same as this one's (case, spacing, look-alike letters folded), with
   * what tells them apart: the owner sees them beside the approval.
   */
  private async duplicatesOf(device: Device): Promise<DuplicateName[]> {
    const skeleton = nameSkeleton(device.name)
    if (!skeleton) return []
    const all = await devicesRepo.list(this.ctx.db())
    return all
      .filter((d) => d.id !== device.id && nameSkeleton(d.name) === skeleton)
      .slice(-10)
      .map((d) => ({
        id: d.id,
        name: d.name,
        ip: d.ip,
        platform: d.platform,
        status: d.status,
        created_at: d.created_at,
      }))
  }

  /**
   * Whether a join request naming `device`'s instance id may be filed on that device (see `join`). A
   * discovered host's first request must also come from an address it was discovered at: its instance id is
   * in every mDNS advert, so without that check anyone who heard the advert first would be the request the
   * owner approves (or, with `trust_local_network`, would be handed the trusted host's key at once).
   */
  private async mayJoinAs(
    trx: Knex,
    device: Device,
    bearer: string | undefined,
    ip: string,
  ): Promise<boolean> {
    if (bearer?.startsWith(DEVICE_KEY_PREFIX) && bearer.length <= 512) {
      const key = await keysRepo.findLive(trx, hashToken(bearer))
      if (key?.device_id === device.id) return true
    }
    if (await joinRepo.existsFor(trx, device.id)) return false
    if (await keysRepo.everIssued(trx, device.id)) return false
    if (!(await this.seenAt(trx, device, ip))) return false
    if (device.status === 'pending' || device.status === 'denied') return true
    if (device.status !== 'approved') return false
    const trust = this.opts.trust?.()
    return !!trust?.enabled && trust.roleId !== ADMIN_ROLE_ID && device.role_id === trust.roleId
  }

  /** Whether `ip` is an address the device was discovered at (its record, or its peer row's addresses). */
  private async seenAt(trx: Knex, device: Device, ip: string): Promise<boolean> {
    const source = canonicalIp(ip)
    if (source === null) return false
    const peer = device.instance_id ? await peersRepo.findByInstanceId(trx, device.instance_id) : undefined
    const known = [device.ip, ...(peer?.addresses ?? [])].map((a) => (a ? canonicalIp(a) : null))
    return known.includes(source)
  }

  /** The waiting device polls this; once approved, the key is handed over exactly once. */
  async claim(requestId: string, claimSecret: string | undefined, ip: string): Promise<ClaimResponse> {
    this.limit(this.claimLimiter, ip, 'claim polls')
    if (typeof requestId !== 'string' || !/^[0-9a-f-]{36}$/.test(requestId)) {
      throw new SharedLLMError('NOT_FOUND', 'join request not found')
    }
    const db = this.ctx.db()
    const result = await db.transaction(async (trx) => {
      const req = await joinRepo.get(trx, requestId)
      if (!req) throw new SharedLLMError('NOT_FOUND', 'join request not found')
      if (!claimSecret || !sameHash(hashToken(claimSecret), req.claim_hash)) {
        throw new SharedLLMError('UNAUTHORIZED', 'wrong or missing X-Claim-Secret')
      }
      if (req.claimed_at !== null) {
        throw new SharedLLMError(
          'GONE',
          'the key for this request was already claimed; ask the host to rotate the key or join again',
        )
      }
      const device = await devicesRepo.get(trx, req.device_id)
      if (!device) throw new SharedLLMError('GONE', 'the device of this join request was removed by the host')
      if (device.status !== 'approved') return { status: device.status, device_id: device.id, revoked: 0 }
      if ((await joinRepo.markClaimed(trx, requestId, this.ctx.now())) !== 1) {
        throw new SharedLLMError('GONE', 'the key for this request was already claimed')
      }
      const { key, revoked } = await this.issueKey(trx, device.id)
      await audit(trx, this.ctx, `device:${device.id}`, 'device.claim_key', device.id, null, null)
      return { status: device.status, device_id: device.id, device_key: key, revoked }
    })
    if (result.revoked > 0) this.ctx.bus.emit('device_keys_revoked', { device_id: result.device_id })
    const { revoked: _, ...response } = result
    return response
  }

  /** A one-time pairing code: a device that joins with it is approved at once with `roleId`. */
  async createPairingCode(roleId: unknown, actor = 'admin'): Promise<PairingResponse> {
    if (typeof roleId !== 'string' || roleId.length === 0 || roleId.length > 100) {
      throw new SharedLLMError('VALIDATION', 'role_id: must name a role', { details: { field: 'role_id' } })
    }
    const now = this.ctx.now()
    const code = newPairingCode(await pairingRepo.liveIds(this.ctx.db(), now))
    const expiresAt = now + PAIRING_TTL_MS
    await this.ctx.db().transaction(async (trx) => {
      if (!(await rolesRepo.get(trx, roleId))) {
        throw new SharedLLMError('NOT_FOUND', `role_id: role '${roleId}' not found`, {
          details: { field: 'role_id' },
        })
      }
      await pairingRepo.insert(trx, {
        code_hash: hashToken(code),
        code_id: pairingIdOf(code),
        role_id: roleId,
        attempts_left: PAIRING_ATTEMPTS,
        created_at: now,
        expires_at: expiresAt,
      })
      await audit(trx, this.ctx, actor, 'pairing.create', roleId, null, { expires_at: expiresAt })
    })
    return { code, expires_at: expiresAt, role_id: roleId, path: `/join?code=${code}` }
  }
}

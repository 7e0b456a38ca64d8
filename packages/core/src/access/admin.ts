import { randomBytes, scrypt, timingSafeEqual } from 'node:crypto'
import type { DomainContext } from '../domain/context'
import { audit } from '../domain/context'
import { SharedLLMError } from '../errors'
import { adminRepo } from '../store/access'
import { AuthBackoff, type BackoffOptions } from './backoff'
import { ADMIN_SECRET_PREFIX, hashToken, newToken, sameHash } from './tokens'

export interface AdminAuthOptions {
  /** @default 7 days */
  sessionTtlMs?: number
  /** How long the one-time login link printed at start stays usable. @default 24 hours */
  loginLinkTtlMs?: number
  /** Backoff on failed admin authentication (per source and over the LAN). */
  backoff?: BackoffOptions
}

// scrypt cost: 16 MiB and ~50 ms per try on a laptop core, off the event loop (libuv's pool).
const SCRYPT = { N: 2 ** 14, r: 8, p: 1, maxmem: 64 * 1024 * 1024 } as const
const KEY_LEN = 32

function scryptAsync(secret: string, salt: Buffer, o: { N: number; r: number; p: number }): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    scrypt(secret, salt, KEY_LEN, { ...o, maxmem: SCRYPT.maxmem }, (err, key) =>
      err ? reject(err) : resolve(key),
    ),
  )
}

/** `scrypt$N$r$p$salt$key` (base64url), salted per secret. */
export async function hashSecret(secret: string): Promise<string> {
  const salt = randomBytes(16)
  const key = await scryptAsync(secret, salt, SCRYPT)
  return `scrypt$${SCRYPT.N}$${SCRYPT.r}$${SCRYPT.p}$${salt.toString('base64url')}$${key.toString('base64url')}`
}

/** Whether `secret` matches a stored hash: scrypt, or the unsalted SHA-256 of older versions. */
export async function secretMatches(secret: string, stored: string): Promise<boolean> {
  if (!stored.startsWith('scrypt$'))
    return /^[0-9a-f]{64}$/.test(stored) && sameHash(hashToken(secret), stored)
  const [, n, r, p, salt, key] = stored.split('$')
  const N = Number(n)
  const expected = Buffer.from(key ?? '', 'base64url')
  if (!Number.isInteger(N) || N < 2 || N > 2 ** 20 || expected.length !== KEY_LEN) return false
  const got = await scryptAsync(secret, Buffer.from(salt ?? '', 'base64url'), {
    N,
    r: Number(r),
    p: Number(p),
  })
  return timingSafeEqual(got, expected)
}

export function isLegacyHash(stored: string): boolean {
  return !stored.startsWith('scrypt$')
}

/**
 * The owner's credential. The admin secret is created at first start (or taken from SHAREDLLM_ADMIN_TOKEN)
 * and stored as a salted scrypt hash (an unsalted SHA-256 hash of older versions is replaced on the first
 * successful check); it can be sent as a bearer token or exchanged for a session cookie. One-time login
 * links (printed at every start, like Jupyter's) are exchanged for a session once. Failed tries back off per
 * source and over the whole LAN.
 */
export class AdminAuth {
  private secretHash: string | undefined
  private secretReadAt = 0
  /** SHA-256 of the last secret that matched `secretHash`, so a bearer admin pays scrypt once, not per request. */
  private verified: { stored: string; digest: string } | undefined
  /**
   * SHA-256 of recent wrong tries against `stored`: the same wrong token again (a misconfigured script
   * retrying) costs a hash, not another scrypt. A new guess still pays in full.
   */
  private rejected: { stored: string; digests: Set<string> } = { stored: '', digests: new Set() }
  private readonly sessionTtlMs: number
  private readonly loginLinkTtlMs: number
  readonly backoff: AuthBackoff

  constructor(
    private readonly ctx: DomainContext,
    opts: AdminAuthOptions = {},
  ) {
    this.sessionTtlMs = opts.sessionTtlMs ?? 7 * 24 * 3600_000
    this.loginLinkTtlMs = opts.loginLinkTtlMs ?? 24 * 3600_000
    this.backoff = new AuthBackoff({ log: ctx.log, now: ctx.now, ...opts.backoff })
  }

  /** Throws RATE_LIMITED (with `retry_after`) while `source` must wait after failed tries. */
  checkBackoff(source: string): void {
    const wait = this.backoff.retryAfter(source)
    if (wait > 0) {
      throw new SharedLLMError('RATE_LIMITED', `too many failed admin logins; try again in ${wait} s`, {
        details: { retry_after: wait },
      })
    }
  }

  /**
   * Checks a presented admin secret from `source` under the backoff: a failure is counted (and logged), a
   * success clears the source. For bearer tokens and logins; `verifySecret` alone counts nothing.
   */
  async verifySecretFrom(secret: string, source: string): Promise<boolean> {
    this.checkBackoff(source)
    const ok = await this.verifySecret(secret)
    if (ok) this.backoff.succeed(source)
    else this.backoff.fail(source)
    return ok
  }

  /**
   * Makes sure an admin secret exists. Returns the new secret when this call created one (first start),
   * so the caller can show it once; null when one existed or `fromEnv` was given.
   */
  async ensureSecret(fromEnv?: string): Promise<string | null> {
    const db = this.ctx.db()
    await adminRepo.deleteExpired(db, this.ctx.now())
    if (fromEnv !== undefined) {
      if (fromEnv.length < 16) {
        throw new SharedLLMError('VALIDATION', 'SHAREDLLM_ADMIN_TOKEN must be at least 16 characters')
      }
      const stored = await adminRepo.secretHash(db)
      let hash = stored
      if (stored && (await secretMatches(fromEnv, stored))) {
        if (isLegacyHash(stored)) {
          hash = await hashSecret(fromEnv)
          await adminRepo.setSecretHash(db, hash, this.ctx.now())
        }
      } else {
        hash = await hashSecret(fromEnv)
        await db.transaction(async (trx) => {
          await adminRepo.setSecretHash(trx, hash as string, this.ctx.now())
          await adminRepo.deleteAllSessions(trx)
          await audit(trx, this.ctx, 'system', 'admin.secret_from_env', null, null, null)
        })
        this.ctx.bus.emit('admin_sessions_ended', { session_hash: null })
      }
      this.secretHash = hash
      this.secretReadAt = Date.now()
      return null
    }
    const stored = await adminRepo.secretHash(db)
    if (stored) {
      this.secretHash = stored
      return null
    }
    return this.resetSecret('system')
  }

  /** A new secret; every session and login link made with the old one stops working. */
  async resetSecret(actor = 'admin'): Promise<string> {
    const secret = newToken(ADMIN_SECRET_PREFIX)
    const hash = await hashSecret(secret)
    await this.ctx.db().transaction(async (trx) => {
      await adminRepo.setSecretHash(trx, hash, this.ctx.now())
      await adminRepo.deleteAllSessions(trx)
      await audit(trx, this.ctx, actor, 'admin.secret_reset', null, null, null)
    })
    this.secretHash = hash
    this.secretReadAt = Date.now()
    this.ctx.bus.emit('admin_sessions_ended', { session_hash: null })
    return secret
  }

  /**
   * Constant-time check of a presented admin secret. The hash is re-read at most once a second, so a
   * `sharedllm admin reset-token` run in another process locks the old secret out of a running server.
   */
  async verifySecret(secret: string): Promise<boolean> {
    if (typeof secret !== 'string' || secret.length === 0 || secret.length > 512) return false
    const now = Date.now()
    if (!this.secretHash || now - this.secretReadAt > 1000) {
      this.secretHash = await adminRepo.secretHash(this.ctx.db())
      this.secretReadAt = now
    }
    const stored = this.secretHash
    if (stored === undefined) return false
    const digest = hashToken(secret)
    if (this.verified?.stored === stored && sameHash(digest, this.verified.digest)) return true
    if (this.rejected.stored !== stored) this.rejected = { stored, digests: new Set() }
    if (this.rejected.digests.has(digest)) return false
    if (!(await secretMatches(secret, stored))) {
      if (this.rejected.digests.size >= 256) this.rejected.digests.clear()
      this.rejected.digests.add(digest)
      return false
    }
    let current = stored
    if (isLegacyHash(stored)) {
      // First success with an older version's unsalted hash: store it salted and slow from now on.
      current = await hashSecret(secret)
      const db = this.ctx.db()
      if ((await adminRepo.secretHash(db)) === stored) {
        await adminRepo.setSecretHash(db, current, this.ctx.now())
        this.ctx.log.info('admin secret hash upgraded to scrypt')
      }
      this.secretHash = current
      this.secretReadAt = Date.now()
    }
    this.verified = { stored: current, digest }
    return true
  }

  /** A one-time login token for the printed login link. */
  async createLoginLink(): Promise<string> {
    const token = newToken()
    const now = this.ctx.now()
    await adminRepo.addSession(this.ctx.db(), hashToken(token), 'login_link', now, now + this.loginLinkTtlMs)
    return token
  }

  /** Exchanges the admin secret or a one-time login token for a session token. */
  async login(credential: string, source = 'unknown'): Promise<{ session: string; expiresAt: number }> {
    const db = this.ctx.db()
    const now = this.ctx.now()
    this.checkBackoff(source)
    let ok = await this.verifySecret(credential)
    if (!ok) {
      // A login link works once: whoever deletes it first gets the session.
      const hash = hashToken(credential)
      const link = await adminRepo.findSession(db, hash, 'login_link', now)
      ok = link !== undefined && (await adminRepo.deleteSession(db, hash)) > 0
    }
    if (!ok) {
      this.backoff.fail(source)
      throw new SharedLLMError('UNAUTHORIZED', 'invalid admin credential')
    }
    this.backoff.succeed(source)
    const session = newToken()
    const expiresAt = now + this.sessionTtlMs
    await adminRepo.addSession(db, hashToken(session), 'session', now, expiresAt)
    return { session, expiresAt }
  }

  async verifySession(session: string): Promise<boolean> {
    if (!session) return false
    return (
      (await adminRepo.findSession(this.ctx.db(), hashToken(session), 'session', this.ctx.now())) !==
      undefined
    )
  }

  async logout(session: string): Promise<void> {
    const hash = hashToken(session)
    if ((await adminRepo.deleteSession(this.ctx.db(), hash)) > 0) {
      this.ctx.bus.emit('admin_sessions_ended', { session_hash: hash })
    }
  }
}

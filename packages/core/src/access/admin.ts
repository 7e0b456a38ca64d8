import { SharedLLMError } from '../errors'
import type { DomainContext } from '../domain/context'
import { audit } from '../domain/context'
import { adminRepo } from '../store/access'
import { ADMIN_SECRET_PREFIX, hashToken, newToken, sameHash } from './tokens'

export interface AdminAuthOptions {
  /** @default 7 days */
  sessionTtlMs?: number
  /** How long the one-time login link printed at start stays usable. @default 24 hours */
  loginLinkTtlMs?: number
}

/**
 * The owner's credential. The admin secret is created at first start (or taken from SHAREDLLM_ADMIN_TOKEN)
 * and stored as a SHA-256 hash; it can be sent as a bearer token or exchanged for a session cookie.
 * One-time login links (printed at every start, like Jupyter's) are exchanged for a session once.
 */
export class AdminAuth {
  private secretHash: string | undefined
  private secretReadAt = 0
  private readonly sessionTtlMs: number
  private readonly loginLinkTtlMs: number

  constructor(
    private readonly ctx: DomainContext,
    opts: AdminAuthOptions = {},
  ) {
    this.sessionTtlMs = opts.sessionTtlMs ?? 7 * 24 * 3600_000
    this.loginLinkTtlMs = opts.loginLinkTtlMs ?? 24 * 3600_000
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
      const hash = hashToken(fromEnv)
      const stored = await adminRepo.secretHash(db)
      if (stored !== hash) {
        await db.transaction(async (trx) => {
          await adminRepo.setSecretHash(trx, hash, this.ctx.now())
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
    const hash = hashToken(secret)
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
    const now = Date.now()
    if (!this.secretHash || now - this.secretReadAt > 1000) {
      this.secretHash = await adminRepo.secretHash(this.ctx.db())
      this.secretReadAt = now
    }
    return this.secretHash !== undefined && sameHash(hashToken(secret), this.secretHash)
  }

  /** A one-time login token for the printed login link. */
  async createLoginLink(): Promise<string> {
    const token = newToken()
    const now = this.ctx.now()
    await adminRepo.addSession(this.ctx.db(), hashToken(token), 'login_link', now, now + this.loginLinkTtlMs)
    return token
  }

  /** Exchanges the admin secret or a one-time login token for a session token. */
  async login(credential: string): Promise<{ session: string; expiresAt: number }> {
    const db = this.ctx.db()
    const now = this.ctx.now()
    let ok = await this.verifySecret(credential)
    if (!ok) {
      // A login link works once: whoever deletes it first gets the session.
      const hash = hashToken(credential)
      const link = await adminRepo.findSession(db, hash, 'login_link', now)
      ok = link !== undefined && (await adminRepo.deleteSession(db, hash)) > 0
    }
    if (!ok) throw new SharedLLMError('UNAUTHORIZED', 'invalid admin credential')
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

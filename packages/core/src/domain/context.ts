import type { Knex } from 'knex'
import { SharedLLMError } from '../errors'
import type { EventBus } from '../events'
import type { Logger } from '../logger'
import { auditRepo } from '../store/audit'

/** Who did something, for the audit log: 'admin', 'device:<id>', 'system', 'mdns'. */
export type Actor = string

export interface DomainContext {
  db(): Knex
  readonly bus: EventBus
  readonly log: Logger
  now(): number
  /** Usable memory for device allocations in MiB (after the host reserve), or undefined while unknown. */
  capacityMb(): number | undefined
}

export async function audit(
  db: Knex,
  ctx: DomainContext,
  actor: Actor,
  action: string,
  target: string | null,
  before: unknown,
  after: unknown,
): Promise<void> {
  await auditRepo.add(db, {
    at: ctx.now(),
    actor,
    action,
    target,
    before: before ?? null,
    after: after ?? null,
  })
}

export function notFound(what: string, id: string): SharedLLMError {
  return new SharedLLMError('NOT_FOUND', `${what} '${id}' not found`, { details: { id } })
}

/**
 * Tells the dashboard that an owner-level change was made (a setting, a "manage" grant, another device's
 * key): the change is in the audit log already; this is the live notice.
 */
export function securityChanged(
  ctx: DomainContext,
  actor: Actor,
  action: string,
  target: string | null,
): void {
  ctx.bus.emit('security_changed', { actor, action, target, at: ctx.now() })
}

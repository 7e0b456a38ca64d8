import type { AuditEntry, Device, Role } from '@sharedllm/core/protocol'
import { formatMb } from './format'

type Rec = Record<string, unknown>
const obj = (v: unknown): Rec => (v && typeof v === 'object' ? (v as Rec) : {})
const num = (v: unknown) => (typeof v === 'number' ? v : null)
const str = (v: unknown) => (typeof v === 'string' ? v : null)

export interface AuditNames {
  devices: Record<string, Device>
  roles: Record<string, Role>
}

/** Who did it, in words: the owner, the command line, a device by name. */
export function actorName(actor: string, names: AuditNames): string {
  if (actor === 'admin') return 'The owner'
  if (actor === 'cli') return 'The command line'
  if (actor === 'system') return 'sharedLLM'
  if (actor.startsWith('device:')) {
    const id = actor.slice('device:'.length)
    return names.devices[id] ? `“${names.devices[id]!.name}”` : 'a device that was removed'
  }
  return actor
}

function deviceName(e: AuditEntry, names: AuditNames): string {
  const known = e.target ? names.devices[e.target] : undefined
  const n = known?.name ?? str(obj(e.before).name) ?? str(obj(e.after).name)
  return n ? `“${n}”` : 'a device that was removed'
}
function roleName(id: unknown, names: AuditNames): string {
  const r = typeof id === 'string' ? names.roles[id] : undefined
  return r ? r.name : typeof id === 'string' ? id.replace(/^role-/, '') : 'no role'
}
const mb = (v: unknown) => (num(v) === null ? '?' : formatMb(num(v)!))

const ROLE_FIELDS: Record<string, string> = {
  name: 'name',
  max_memory_mb: 'memory',
  can_pull: 'may pull',
  allowed_models: 'models',
  requests_per_minute: 'requests a minute',
  max_concurrent: 'streams at once',
  max_keep_alive_s: 'keep_alive',
  max_context_tokens: 'context',
}
const show = (k: string, v: unknown) =>
  k === 'max_memory_mb'
    ? mb(v)
    : Array.isArray(v)
      ? v.length
        ? v.join(', ')
        : 'all'
      : v === null || v === undefined
        ? 'none'
        : String(v)

/** One audit entry as a sentence with device and role names instead of ids. */
export function auditSentence(e: AuditEntry, names: AuditNames): string {
  const who = actorName(e.actor, names)
  const before = obj(e.before)
  const after = obj(e.after)
  switch (e.action) {
    case 'device.add':
      return `${who} added ${deviceName(e, names)}${str(after.ip) ? ` (${after.ip})` : ''}.`
    case 'device.approve':
      return `${who} approved ${deviceName(e, names)} as ${roleName(after.role_id, names)} with ${mb(after.allocation_mb)}.`
    case 'device.deny':
      return `${who} denied ${deviceName(e, names)}.`
    case 'device.revoke':
      return `${who} revoked ${deviceName(e, names)}; its key stopped working.`
    case 'device.remove':
      return `${who} removed ${deviceName(e, names)}.`
    case 'device.role':
      return `${who} moved ${deviceName(e, names)} from ${roleName(before.role_id, names)} to ${roleName(after.role_id, names)}.`
    case 'device.allocation':
      return `${who} set the memory slice of ${deviceName(e, names)} to ${mb(after.allocation_mb)} (was ${mb(before.allocation_mb)}).`
    case 'device.rotate_key':
      return `${who} issued a new key for ${deviceName(e, names)}; the old one stopped working.`
    case 'device.claim_key':
      return `${deviceName(e, names)} collected its key after approval.`
    case 'pairing.create':
      return `${who} made a pairing code for role ${roleName(e.target, names)}.`
    case 'role.create':
      return `${who} created role “${str(after.name) ?? '?'}” with ${mb(after.max_memory_mb)}.`
    case 'role.delete':
      return `${who} deleted role “${str(before.name) ?? '?'}”.`
    case 'role.update': {
      const changes = Object.keys(ROLE_FIELDS)
        .filter((k) => JSON.stringify(before[k]) !== JSON.stringify(after[k]) && k in after)
        .map((k) => `${ROLE_FIELDS[k]} ${show(k, before[k])} → ${show(k, after[k])}`)
      const name = str(after.name) ?? roleName(e.target, names)
      return `${who} changed role “${name}”${changes.length ? `: ${changes.join(', ')}` : ''}.`
    }
    case 'setting.set':
      return `${who} set ${e.target} to ${JSON.stringify(after.value)} (was ${JSON.stringify(before.value)}).`
    case 'admin.secret_reset':
      return `${who} replaced the admin secret; every owner session ended.`
    case 'admin.secret_from_env':
      return 'The admin secret was set from SHAREDLLM_ADMIN_TOKEN.'
    default:
      return `${who}: ${e.action}${e.target ? ` on ${e.target}` : ''}.`
  }
}

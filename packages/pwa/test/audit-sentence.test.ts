import type { AuditEntry } from '@sharedllm/core/protocol'
import { describe, expect, it } from 'vitest'
import { auditSentence } from '../src/lib/audit'
import { builtinRoles, device } from './helpers'

const names = {
  devices: { 'dev-1': device({ id: 'dev-1', name: 'Pixel' }) },
  roles: Object.fromEntries(builtinRoles.map((r) => [r.id, r])),
}
const entry = (over: Partial<AuditEntry>): AuditEntry => ({
  id: 1,
  at: 0,
  actor: 'admin',
  action: 'device.approve',
  target: 'dev-1',
  before: null,
  after: null,
  ...over,
})

describe('audit sentences', () => {
  it('names devices and roles instead of ids', () => {
    expect(auditSentence(entry({ after: { role_id: 'role-guest', allocation_mb: 2048 } }), names)).toBe(
      'The owner approved “Pixel” as guest with 2 GiB.',
    )
    expect(
      auditSentence(
        entry({ action: 'device.role', before: { role_id: 'role-guest' }, after: { role_id: 'role-user' } }),
        names,
      ),
    ).toBe('The owner moved “Pixel” from guest to user.')
    expect(
      auditSentence(entry({ action: 'device.claim_key', actor: 'device:dev-1', after: null }), names),
    ).toBe('“Pixel” collected its key after approval.')
  })
  it('uses the name kept in the entry for a removed device, and lists what a role update changed', () => {
    expect(
      auditSentence(
        entry({ action: 'device.remove', target: 'gone', before: { name: 'Old tablet' } }),
        names,
      ),
    ).toBe('The owner removed “Old tablet”.')
    expect(
      auditSentence(
        entry({
          action: 'role.update',
          target: 'role-user',
          before: { name: 'user', max_memory_mb: 4096, can_pull: true },
          after: { name: 'user', max_memory_mb: 8192, can_pull: true },
        }),
        names,
      ),
    ).toBe('The owner changed role “user”: memory 4 GiB → 8 GiB.')
    expect(
      auditSentence(
        entry({
          action: 'setting.set',
          target: 'host_reserve_mb',
          before: { value: 2048 },
          after: { value: 4096 },
        }),
        names,
      ),
    ).toBe('The owner set host_reserve_mb to 4096 (was 2048).')
  })
})

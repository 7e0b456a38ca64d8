import type { SnapshotMessage, UsageRecord } from '@sharedllm/core/protocol'
import { createPinia, setActivePinia } from 'pinia'
import { beforeEach, describe, expect, it } from 'vitest'
import { useApprovalsStore } from '../src/stores/approvals'
import { useDevicesStore } from '../src/stores/devices'
import { useLiveStore } from '../src/stores/live'
import { useModelsStore } from '../src/stores/models'
import { useNoticesStore } from '../src/stores/notices'
import { useQueueStore } from '../src/stores/queue'
import { useRolesStore } from '../src/stores/roles'
import { useSessionStore } from '../src/stores/session'
import { useUsageStore } from '../src/stores/usage'
import { builtinRoles, device, role } from './helpers'

describe('live store', () => {
  beforeEach(() => setActivePinia(createPinia()))

  const snap = (devices = [device()]): SnapshotMessage => ({
    type: 'snapshot',
    devices,
    roles: builtinRoles,
    memory: null,
    ollama: null,
    models_running: [],
    pulls: [],
  })

  it('replaces state from a snapshot, so a reconnect forgets what was removed meanwhile', () => {
    const live = useLiveStore()
    const a = device({ status: 'approved' })
    const b = device()
    live.apply(snap([a, b]))
    expect(useDevicesStore().list).toHaveLength(2)
    expect(useApprovalsStore().queue.map((d) => d.id)).toEqual([b.id])
    // b was approved elsewhere while we were offline
    live.apply(snap([a, { ...b, status: 'approved' }]))
    expect(useApprovalsStore().queue).toEqual([])
    live.apply(snap([a]))
    expect(useDevicesStore().list.map((d) => d.id)).toEqual([a.id])
  })

  it('a device told it was revoked or removed forgets its key and says why, at once', () => {
    const live = useLiveStore()
    const session = useSessionStore()
    const me = device({ status: 'approved' })
    localStorage.setItem('sharedllm.device_key', 'sllm_old')
    session.kind = 'device'
    session.device = me
    session.deviceKey = 'sllm_old'
    // Another device's revocation changes nothing here.
    live.apply({ type: 'device_revoked', device: { ...device(), status: 'revoked' } })
    expect(session.kind).toBe('device')
    live.apply({
      type: 'device_revoked',
      device: { ...me, status: 'revoked', updated_at: me.updated_at + 1 },
    })
    expect(session.kind).toBe('anonymous')
    expect(session.deviceKey).toBeNull()
    expect(localStorage.getItem('sharedllm.device_key')).toBeNull()
    expect(session.notice).toMatch(/revoked this device’s access/)
    expect(session.notice).not.toMatch(/admin/i)
    session.kind = 'device'
    session.device = me
    live.apply({ type: 'device_removed', device: me })
    expect(session.notice).toMatch(/removed this device/)
  })

  it('keeps the newer device record when an older event arrives late', () => {
    const live = useLiveStore()
    const d = device({ status: 'approved', updated_at: 200 })
    live.apply({ type: 'device_updated', device: d })
    live.apply({ type: 'device_online', device: { ...d, status: 'pending', updated_at: 100 } })
    expect(useDevicesStore().byId[d.id]?.status).toBe('approved')
  })

  it('follows roles, pulls and usage', () => {
    const live = useLiveStore()
    live.apply(snap())
    live.apply({ type: 'role_changed', action: 'created', role: role('r-kids', 'kids', 2048) })
    expect(useRolesStore().byId['r-kids']?.name).toBe('kids')
    live.apply({ type: 'role_changed', action: 'deleted', role: role('r-kids', 'kids', 2048) })
    expect(useRolesStore().byId['r-kids']).toBeUndefined()

    live.apply({
      type: 'model_pull_progress',
      name: 'qwen2.5:7b',
      status: 'pulling',
      completed: 1,
      total: 4,
      percent: 25,
    })
    expect(useModelsStore().pulls['qwen2.5:7b']?.percent).toBe(25)
    live.apply({ type: 'model_pull_failed', name: 'qwen2.5:7b', error: 'disk full' })
    expect(useModelsStore().pulls['qwen2.5:7b']?.error).toBe('disk full')

    const rec: UsageRecord = {
      id: 7,
      device_id: 'dev-x',
      model: 'llama3.2:3b',
      endpoint: '/api/chat',
      prompt_tokens: 10,
      completion_tokens: 32,
      duration_ms: 900,
      status: 200,
      at: 1,
    }
    live.apply({ type: 'usage', ...rec })
    live.apply({ type: 'usage', ...rec }) // the same record twice counts once
    live.apply({ type: 'usage', ...rec, id: 8 })
    expect(useUsageStore().byDevice['dev-x']).toEqual({
      requests: 2,
      prompt_tokens: 20,
      completion_tokens: 64,
    })
  })

  it('keeps queue positions by request id until cleared, and budget marks as notices', () => {
    const live = useLiveStore()
    live.apply({
      type: 'queue_position',
      request_id: 'chat-aaaaaaaa',
      device_id: 'd1',
      position: 3,
      eta_s: null,
    })
    live.apply({
      type: 'queue_position',
      request_id: 'chat-aaaaaaaa',
      device_id: 'd1',
      position: 2,
      eta_s: 8,
    })
    const queue = useQueueStore()
    expect(queue.positions['chat-aaaaaaaa']).toMatchObject({ position: 2, eta_s: 8 })
    queue.clear('chat-aaaaaaaa')
    expect(queue.positions).toEqual({})

    const mark = { device_id: 'd1', window: 'day' as const, used: 80, budget: 100, resets_at: 1 }
    live.apply({ type: 'quota', ...mark, threshold: 80 })
    live.apply({ type: 'quota', ...mark, used: 100, threshold: 100 })
    const notices = useNoticesStore()
    // The newer mark of the same window replaces the older one.
    expect(notices.quota.map((n) => n.threshold)).toEqual([100])
    live.apply({
      type: 'budget_reached',
      ...mark,
      used: 100,
      threshold: 100,
      device_name: 'Kids tablet',
      time_zone: 'Europe/Berlin',
    })
    expect(notices.budgetReached.map((n) => n.device_name)).toEqual(['Kids tablet'])
  })
})

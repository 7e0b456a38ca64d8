import type { ServerMessage } from '@sharedllm/core/protocol'
import { defineStore } from 'pinia'
import { LiveSocket, socketUrl } from '../api/socket'
import { useApprovalsStore } from './approvals'
import { useConnectionStore } from './connection'
import { useDevicesStore } from './devices'
import { useMemoryStore } from './memory'
import { useMeStore } from './me'
import { useModelsStore } from './models'
import { useNoticesStore } from './notices'
import { usePoolStore } from './pool'
import { useQueueStore } from './queue'
import { useRolesStore } from './roles'
import { useSessionStore } from './session'
import { useSettingsStore } from './settings'
import { useUsageStore } from './usage'

/** Feeds every store from the one WebSocket. */
export const useLiveStore = defineStore('live', () => {
  let socket: LiveSocket | null = null

  function apply(msg: ServerMessage) {
    const devices = useDevicesStore()
    const roles = useRolesStore()
    const memory = useMemoryStore()
    const models = useModelsStore()
    const approvals = useApprovalsStore()
    const session = useSessionStore()
    switch (msg.type) {
      case 'snapshot':
        // Replaces, not merges: after a reconnect this is how missed events are caught up.
        devices.replaceAll(msg.devices)
        roles.replaceAll(msg.roles)
        memory.setStats(msg.memory)
        memory.setOllama(msg.ollama)
        models.setRunning(msg.models_running)
        models.setPulls(msg.pulls)
        for (const d of msg.devices) if (d.status === 'pending') approvals.announce(d)
        for (const q of approvals.queue)
          if (!msg.devices.some((d) => d.id === q.id && d.status === 'pending')) approvals.settle(q.id)
        useConnectionStore().markSnapshot()
        return
      case 'memory_stats':
        memory.setStats(msg)
        return
      case 'provider_error':
        memory.providerError(msg.provider, msg.message)
        return
      case 'device_pending_approval':
        devices.upsert(msg.device)
        approvals.announce(msg.device)
        return
      case 'device_approved':
      case 'device_denied':
      case 'device_revoked':
        devices.upsert(msg.device)
        approvals.settle(msg.device.id)
        if (session.device?.id === msg.device.id) {
          // The server tells a device before it closes its socket; this is how the phone learns at once.
          if (msg.type === 'device_approved') session.device = msg.device
          else session.endDevice(msg.type === 'device_denied' ? 'denied' : 'revoked')
        }
        return
      case 'device_removed':
        devices.drop(msg.device.id)
        approvals.settle(msg.device.id)
        if (session.device?.id === msg.device.id) session.endDevice('removed')
        return
      case 'device_discovered':
      case 'device_updated':
      case 'device_online':
      case 'device_offline':
        devices.upsert(msg.device)
        if (msg.device.status === 'pending') approvals.announce(msg.device)
        return
      case 'allocation_changed':
        devices.upsert(msg.device)
        if (session.device?.id === msg.device.id) session.device = msg.device
        return
      case 'role_changed':
        if (msg.action === 'deleted') roles.drop(msg.role.id)
        else roles.upsert(msg.role)
        return
      case 'setting_changed':
        useSettingsStore().changed(msg.key, msg.value)
        return
      case 'security_changed':
        // Recorded in the audit log, which the Audit page reads when opened.
        return
      case 'join_requests_coalesced':
        // A burst of requests: the toast shows the latest few; the Devices page has them all.
        for (const d of msg.devices) {
          devices.upsert(d)
          approvals.announce(d)
        }
        return
      case 'ollama_status':
        memory.setOllama(msg)
        return
      case 'model_pull_progress':
        models.progress(msg)
        return
      case 'model_pulled':
        models.finished(msg.name)
        if (session.isAdmin) models.load().catch(() => {})
        return
      case 'model_pull_failed':
        models.finished(msg.name, msg.error)
        return
      case 'model_deleted':
        models.removed(msg.name)
        return
      case 'models_running':
        models.setRunning(msg.models)
        return
      case 'usage':
        useUsageStore().record(msg)
        // A device's own request finished: its meters (remaining budget) follow without a page reload.
        if (session.kind === 'device') useMeStore().load()
        return
      case 'peer_updated':
        usePoolStore().peerChanged(msg.peer)
        return
      case 'queue_position':
        useQueueStore().position(msg)
        return
      case 'quota':
        useNoticesStore().onQuota(msg)
        // The meters follow the mark at once rather than at the next chat's end.
        if (session.kind === 'device') useMeStore().load()
        return
      case 'budget_reached':
        useNoticesStore().onBudgetReached(msg)
        return
      default:
        // A new wire event type without a case here fails the type check.
        msg satisfies never
    }
  }

  function start() {
    const connection = useConnectionStore()
    const session = useSessionStore()
    if (!socket) {
      socket = new LiveSocket({
        url: socketUrl(),
        protocols: () => (session.deviceKey ? ['sharedllm', `bearer.${session.deviceKey}`] : undefined),
        onMessage: apply,
        onState: connection.setState,
        // 4001: the key was revoked or replaced. Ask the host who we are now; a dead key is then
        // forgotten with a notice, instead of reconnecting with it forever.
        onClose: (code) => {
          if (code === 4001 && session.kind === 'device') session.resolve().catch(() => {})
        },
      })
    }
    socket.start()
  }
  function restart() {
    if (socket) socket.restart()
    else start()
  }
  function stop() {
    socket?.stop()
  }
  return { apply, start, restart, stop }
})

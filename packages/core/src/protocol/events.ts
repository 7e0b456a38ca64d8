import type {
  Device,
  DuplicateName,
  MemoryStats,
  ModelInfo,
  OllamaStatus,
  Peer,
  PullProgress,
  QueuePositionEvent,
  QuotaCrossing,
  Role,
  RunningModel,
  UsageRecord,
} from './types'

/**
 * The one typed event map of sharedLLM. Core emits these; the server forwards the `WIRE_EVENT_TYPES` subset
 * to WebSocket clients as `{ type, ...payload }`; the PWA switches over them exhaustively.
 */
export interface EventMap {
  memory_stats: MemoryStats
  provider_error: { provider: string; message: string; stale: boolean }
  /**
   * A device waits for approval. `duplicates`: known devices whose names read the same (look-alike letters
   * and case folded), with their address, platform and time, so the owner can tell a copy from the real one.
   */
  device_pending_approval: { device: Device; duplicates?: DuplicateName[] }
  device_discovered: { device: Device; addresses: string[] }
  device_approved: { device: Device }
  device_denied: { device: Device }
  device_revoked: { device: Device }
  device_removed: { device: Device }
  device_updated: { device: Device }
  device_online: { device: Device }
  device_offline: { device: Device }
  allocation_changed: { device: Device; previous_mb: number; allocation_mb: number }
  /** Every key of the device stopped working (revoke, deny, rotate): open streams and sockets must end. */
  device_keys_revoked: { device_id: string }
  /** Owner sessions ended: one (logout; its SHA-256 hash) or all of them and the old secret (null: reset). */
  admin_sessions_ended: { session_hash: string | null }
  role_changed: { action: 'created' | 'updated' | 'deleted'; role: Role }
  setting_changed: { key: string; value: unknown }
  /**
   * An owner-level change (a setting, a device granted or refused "manage", another device's key rotated),
   * also in the audit log. Admin sockets only.
   */
  security_changed: { actor: string; action: string; target: string | null; at: number }
  /**
   * Join requests arrived faster than the dashboard should toast them: the first few in a window come as
   * `device_pending_approval`, the rest of that window as one notice with how many and the latest few.
   */
  join_requests_coalesced: { count: number; first_at: number; last_at: number; devices: Device[] }
  ollama_status: OllamaStatus
  model_pull_progress: PullProgress
  model_pulled: { name: string }
  model_pull_failed: { name: string; error: string }
  model_deleted: { name: string }
  models_running: { models: RunningModel[] }
  models_changed: { models: ModelInfo[] }
  usage: UsageRecord
  /**
   * A peer host changed (discovered, join state, key claimed, online, pooling: up or down, breaker opened or
   * closed, with the failure). The owner's sockets only; never a key or claim secret (`toPeer`).
   */
  peer_updated: { peer: Peer }
  /** A background discovery step failed (socket, store); discovery keeps running. */
  discovery_error: { message: string }
  /**
   * A request of this device waits in the fair-share queue (`FairScheduler.positions()`): sent when its
   * position or ETA changes. A device's socket gets its own; the owner's gets all.
   */
  queue_position: QueuePositionEvent & { device_id: string }
  /** A device's usage passed 80 % or 100 % of a token budget (`quotaCrossings`). The device and the owner. */
  quota: QuotaCrossing
  /**
   * The owner's dashboard notice: a device used up a budget (its 100 % mark). The owner only. `time_zone`:
   * the host's IANA zone, which the reset follows and is shown in.
   */
  budget_reached: QuotaCrossing & { device_name: string; time_zone: string }
}

export type EventType = keyof EventMap

/** Events forwarded to WebSocket clients. */
export const WIRE_EVENT_TYPES = [
  'memory_stats',
  'provider_error',
  'device_pending_approval',
  'device_discovered',
  'device_approved',
  'device_denied',
  'device_revoked',
  'device_removed',
  'device_updated',
  'device_online',
  'device_offline',
  'allocation_changed',
  'role_changed',
  'setting_changed',
  'security_changed',
  'join_requests_coalesced',
  'ollama_status',
  'model_pull_progress',
  'model_pulled',
  'model_pull_failed',
  'model_deleted',
  'models_running',
  'usage',
  'peer_updated',
  'queue_position',
  'quota',
  'budget_reached',
] as const satisfies readonly EventType[]

export type WireEventType = (typeof WIRE_EVENT_TYPES)[number]

/** The first message every WebSocket client gets: the current state, so it needs no REST round trip. */
export interface SnapshotMessage {
  type: 'snapshot'
  devices: Device[]
  roles: Role[]
  memory: MemoryStats | null
  ollama: OllamaStatus | null
  models_running: RunningModel[]
  pulls: PullProgress[]
}

export type WireEventMessage = { [K in WireEventType]: { type: K } & EventMap[K] }[WireEventType]
export type ServerMessage = SnapshotMessage | WireEventMessage

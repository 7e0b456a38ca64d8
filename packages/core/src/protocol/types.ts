/**
 * Browser-safe domain types shared by core, the server and the PWA. Only types and plain constants live
 * here: nothing that imports Node.
 *
 * Units: memory sizes called `*_mb` are MiB (1024 * 1024 bytes); `*Bytes` are bytes. Times are UTC ms.
 */

export type DeviceStatus = 'pending' | 'approved' | 'denied' | 'revoked'
export type DeviceSource = 'manual' | 'mdns' | 'join' | 'peer'

export interface Device {
  id: string
  name: string
  ip: string | null
  platform: string | null
  source: DeviceSource
  status: DeviceStatus
  role_id: string | null
  allocation_mb: number
  online: boolean
  last_seen: number | null
  /** sharedLLM instance id of a peer host (mDNS or peer join); null for phones and laptops. */
  instance_id: string | null
  /**
   * The owner granted this admin-role device "manage": it may change settings and roles and other devices'
   * keys, as the owner does. Only the owner grants it; it ends when the device leaves the admin role.
   */
  can_manage: boolean
  created_at: number
  updated_at: number
}

/** A known device whose name reads the same as a new join request's, with what tells them apart. */
export interface DuplicateName {
  id: string
  name: string
  ip: string | null
  platform: string | null
  status: DeviceStatus
  created_at: number
}

export interface Role {
  id: string
  name: string
  max_memory_mb: number
  can_pull: boolean
  /** 0 (untrusted) to 3 (admin). */
  trust_level: number
  /** Model name patterns (`llama3*`, `qwen2.5:7b`); empty means every model. */
  allowed_models: string[]
  /** null means no limit. */
  requests_per_minute: number | null
  max_concurrent: number
  /** Longest keep_alive a device of this role may ask for, in seconds; null means no clamp. */
  max_keep_alive_s: number | null
  /** Largest context (num_ctx) a device of this role may ask for; null means no clamp. */
  max_context_tokens: number | null
  builtin: boolean
  created_at: number
  updated_at: number
}

export const BUILTIN_ROLE_IDS = ['role-admin', 'role-user', 'role-guest'] as const
export type BuiltinRoleId = (typeof BUILTIN_ROLE_IDS)[number]

export interface AllocationChange {
  id: number
  device_id: string
  previous_mb: number
  allocation_mb: number
  actor: string
  reason: string
  at: number
}

export interface AuditEntry {
  id: number
  at: number
  actor: string
  action: string
  target: string | null
  before: unknown
  after: unknown
}

export type MemoryKind = 'dedicated' | 'unified' | 'system'

/** One memory pool as a provider reports it. */
export interface MemoryDevice {
  /** `vendor:localId`, e.g. `nvidia:GPU-5f1c…` or `ram:system`. */
  id: string
  name: string
  kind: MemoryKind
  totalBytes: number
  usedBytes: number
  freeBytes: number
}

export interface MemoryDeviceReading extends MemoryDevice {
  provider: string
  /** True when the last sample failed and this is the last good value. */
  stale: boolean
  sampledAt: number
}

export interface ProviderState {
  name: string
  available: boolean
  /** Providers that an available one supersedes (apple supersedes ram) are listed as inactive. */
  active: boolean
  lastError: string | null
}

export interface MemoryTotals {
  /** Usable memory of the primary devices minus the host reserve. */
  capacityBytes: number
  usedBytes: number
  freeBytes: number
  allocatedBytes: number
  hostReserveBytes: number
}

export interface MemoryStats {
  at: number
  devices: MemoryDeviceReading[]
  providers: ProviderState[]
  totals: MemoryTotals
}

export type OllamaState =
  | 'unknown'
  | 'starting'
  | 'running'
  | 'restarting'
  | 'stopped'
  | 'unreachable'
  | 'failed'

export interface OllamaStatus {
  state: OllamaState
  running: boolean
  host: string
  version: string | null
  /** True when sharedLLM started this Ollama and will stop it; false when it attached to a running one. */
  owned: boolean
  pid: number | null
  restarts: number
  /** True after too many restarts in the window; the manager stops trying until restarted. */
  gave_up: boolean
  last_error: string | null
  checked_at: number | null
}

export interface ModelDetails {
  format?: string
  family?: string
  families?: string[] | null
  parameter_size?: string
  quantization_level?: string
  parent_model?: string
}

export interface ModelInfo {
  name: string
  model: string
  size: number
  digest: string
  modified_at: string
  details: ModelDetails
}

export interface RunningModel {
  name: string
  model: string
  size: number
  size_vram: number
  digest: string
  expires_at: string | null
  context_length: number | null
  details: ModelDetails
}

export interface PullProgress {
  name: string
  status: string
  completed: number
  total: number
  /** 0–100, or null before any layer size is known. */
  percent: number | null
}

export interface UsageRecord {
  id: number
  device_id: string | null
  model: string | null
  endpoint: string
  prompt_tokens: number
  completion_tokens: number
  duration_ms: number
  status: number
  at: number
}

/**
 * Whether a model fits a memory budget: `fits`, `exceeds_allocation` (its estimate is larger than the budget),
 * `unknown` (no estimate yet), or `not_allowed` (the role's model list does not include it; size aside).
 */
export type FitVerdict = 'fits' | 'exceeds_allocation' | 'unknown' | 'not_allowed'

/**
 * Whether a model can be loaded right now, against the host's free memory (the fit verdict says whether it
 * may be loaded at all): `loaded` (already in memory), `free` (its estimate fits the free memory),
 * `unloads_idle` (it fits once Ollama unloads loaded models nobody is using, which Ollama does on its own),
 * `busy` (not even then: models in use hold the memory, so the request waits in Ollama's queue or runs partly
 * on the CPU), `unknown` (no estimate, or no memory reading).
 */
export type LoadVerdict = 'loaded' | 'free' | 'unloads_idle' | 'busy' | 'unknown'

export type PeerStatus = 'discovered' | 'joining' | 'pending' | 'joined' | 'denied' | 'failed'

/** Another sharedLLM host found on the LAN, as `GET /api/peers` lists it. Its key never leaves core. */
export interface Peer {
  id: string
  instance_id: string
  name: string
  /** Resolved addresses (the one the advert came from first), never the advertised hostname. */
  addresses: string[]
  port: number
  version: string | null
  online: boolean
  last_seen: number | null
  status: PeerStatus
  has_key: boolean
  /** Why the last join or call failed, for the dashboard; null when all is well. */
  error: string | null
}

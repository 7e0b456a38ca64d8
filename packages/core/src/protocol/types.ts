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
  /** Overrides of the role's token budgets and hours for this device; null uses the role's. */
  token_budget_day: number | null
  token_budget_week: number | null
  token_budget_month: number | null
  allowed_hours: AllowedHours | null
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

/**
 * One window of a weekly schedule, in the host's time zone: on each listed day (0 = Sunday … 6 = Saturday)
 * from `from` to `to` (`HH:MM`, 24-hour). A `to` at or before `from` runs past midnight into the next day;
 * `to` may be `24:00`.
 */
export interface AllowedHoursWindow {
  days: number[]
  from: string
  to: string
}
/** A weekly schedule; the device may use the gateway inside any window. */
export type AllowedHours = AllowedHoursWindow[]
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
  /** Weight in the fair-share queue: a device gets GPU time in proportion to it. */
  share_weight: number
  /** Requests a device may have waiting in the queue (besides those running); past it: 429. */
  max_queued: number
  /** Longest a request may wait in the queue, in seconds; past it: 503 with Retry-After. */
  max_wait_s: number
  /** May run cloud models (`…:cloud`, `…-cloud`) through the host's Ollama account. */
  allow_cloud: boolean
  /** Tokens (prompt + completion) per day, ISO week and month in the host's time zone; null: no budget. */
  token_budget_day: number | null
  token_budget_week: number | null
  token_budget_month: number | null
  /** When devices of this role may use the gateway; null: always. */
  allowed_hours: AllowedHours | null
  /** Longest keep_alive a device of this role may ask for, in seconds; null means no clamp. */
  max_keep_alive_s: number | null
  /** Largest context (num_ctx) a device of this role may ask for; null means no clamp. */
  max_context_tokens: number | null
  /** Largest gateway request body in bytes (1 MiB for guest and user, 16 MiB for admin). */
  max_body_bytes: number
  /** Most tokens one request may generate (num_predict, max_tokens); null means Ollama's own bound. */
  max_predict_tokens: number | null
  builtin: boolean
  created_at: number
  updated_at: number
}

/** The owner's role: the one that may administer the host. */
export const ADMIN_ROLE_ID = 'role-admin'
export const BUILTIN_ROLE_IDS = [ADMIN_ROLE_ID, 'role-user', 'role-guest'] as const
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
  /** What it is doing now, e.g. "starting (GPU discovery)"; null when nothing to add. */
  detail?: string | null
  /** The model store of an Ollama sharedLLM started (OLLAMA_MODELS); null: Ollama's default or attached. */
  models_dir?: string | null
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
  /** Set for a cloud model's stub (it runs on that host, e.g. https://ollama.com:443). */
  remote_host?: string
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
  /**
   * The stored row's id; on a live `usage` event a negative id unique in this process (the gateway's
   * rows are written in batches, after the event).
   */
  id: number
  device_id: string | null
  model: string | null
  endpoint: string
  prompt_tokens: number
  completion_tokens: number
  duration_ms: number
  status: number
  at: number
  /** The peer host that served a routed request (its name); null or absent when this host served it. */
  via?: string | null
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
  /** Pooling state (status polls, circuit breaker) of a joined peer; absent when it is not polled. */
  pool?: PeerPoolState
}

/** Circuit breaker of one peer: `open` refuses routed requests until `open_until`, then one trial runs. */
export interface PeerBreakerState {
  state: 'closed' | 'open' | 'half_open'
  /** Consecutive failed routed requests. */
  failures: number
  /** UTC ms when an open breaker lets a trial request through; null when not open. */
  open_until: number | null
  last_failure: string | null
}

/** What this host knows of a joined peer from its `/api/peer/status` polls. */
export interface PeerPoolState {
  /** Answered the last polls; false after `missed` polls in a row failed. */
  up: boolean
  missed: number
  last_ok_at: number | null
  last_error: string | null
  /** Smoothed round trip of the status poll, in ms. */
  latency_ms: number | null
  breaker: PeerBreakerState
}

/** A request waiting in the fair-share queue. */
export interface QueuePosition {
  request_id: string
  device_id: string
  model: string
  /** 1 = next to start. */
  position: number
  /** Seconds until it likely starts (EWMA of service time per model); null before any request was timed. */
  eta_s: number | null
  waited_s: number
}

/** What a device's WebSocket gets while one of its requests waits. */
export type QueuePositionEvent = Pick<QueuePosition, 'request_id' | 'position' | 'eta_s'>

/** The fair-share queue as the dashboard and /metrics see it. */
export interface QueueSnapshot {
  at: number
  devices: Array<{
    device_id: string
    role_id: string
    share_weight: number
    /** Virtual token counter: tokens served (input ×1, output ×2) divided by share_weight. */
    vtc_counter: number
    waiting: number
    running: number
    oldest_wait_s: number | null
  }>
  /** In the order they would start. */
  waiting: QueuePosition[]
  running: Array<{
    request_id: string
    device_id: string
    model: string
    running_s: number
    reclaimed: boolean
  }>
  models: Array<{
    model: string
    running: number
    capacity: number
    loaded: boolean
    service_s: number | null
  }>
  paused_roles: Array<{ role_id: string; mode: 'wait' | 'refuse' }>
}

/** One budget window of a device as `/api/me` and the dashboard show it. */
export interface QuotaWindowView {
  window: 'day' | 'week' | 'month'
  /** null: no budget in this window. */
  budget: number | null
  used: number
  remaining: number | null
  /** UTC ms of the next reset. */
  resets_at: number
}

/** A device's budgets and hours right now (device values override its role's). */
export interface DeviceLimitsView {
  /** The host's IANA time zone, which windows and hours follow. */
  time_zone: string
  quota: QuotaWindowView[]
  hours: HoursStatus
}

/** Where a device stands against its allowed hours at an instant. */
export interface HoursStatus {
  /** May use the gateway now (inside the schedule, or inside an owner's grant). */
  open: boolean
  /** No schedule: always open. */
  always: boolean
  /** The next instant `open` changes; null when it never does. */
  next_change: number | null
  /** When closed: the next opening; null when open or never opening. */
  next_open: number | null
  /** When open: when it closes; null when closed or never closing. */
  open_until: number | null
  /** An owner's "one more hour" that is still running, else null. */
  granted_until: number | null
}

/** A device's usage crossed 80 % or 100 % of a budget (the `quota` WebSocket event). */
export interface QuotaCrossing {
  device_id: string
  window: 'day' | 'week' | 'month'
  threshold: 80 | 100
  used: number
  budget: number
  resets_at: number
}

/**
 * REST shapes of the sharedLLM HTTP API: the contract between `@sharedllm/server-express` and the PWA.
 * Errors are always `ApiError` with the HTTP status from core's code table.
 */
import type { ErrorCode } from '../errors'
import type { SettingKey } from './settings'
import type {
  AllocationChange,
  AllowedHours,
  AuditEntry,
  Device,
  DeviceLimitsView,
  DeviceStatus,
  FitVerdict,
  LoadVerdict,
  MemoryStats,
  ModelInfo,
  OllamaStatus,
  Peer,
  PeerBreakerState,
  PullProgress,
  QueueSnapshot,
  Role,
  RunningModel,
  UsageRecord,
} from './types'

/** GET /api/queue (owner): the fair-share queue now: who runs, who waits and for how long, per model. */
export type QueueResponse = QueueSnapshot

/** POST /api/queue/pause and /resume (owner): the roles paused after the change. */
export interface QueuePauseResponse {
  paused_roles: Array<{ role_id: string; mode: 'wait' | 'refuse' }>
}

/** POST /api/queue/reclaim (owner): the running requests that were stopped. */
export interface QueueReclaimResponse {
  reclaimed: string[]
}

export interface ApiError {
  error: string
  code: ErrorCode
  details?: Record<string, unknown>
}

/** GET /healthz (no auth) */
export interface HealthResponse {
  ok: true
  version: string
}

/** GET /api/auth/session: who the caller is. 401 when nobody. */
export type SessionResponse =
  | { kind: 'admin'; via: 'cookie' | 'bearer' | 'device' }
  | { kind: 'device'; device: Device; role: Role | null }

/** POST /api/auth/login `{ secret }` sets the HttpOnly session cookie. */
export interface LoginRequest {
  secret: string
}

/** GET /api/gpu */
export type GpuResponse = MemoryStats

/** GET /api/devices?status=pending */
export interface DevicesResponse {
  devices: Device[]
}
export interface DeviceListQuery {
  status?: DeviceStatus
}
/** POST /api/devices, GET/DELETE /api/devices/:id, POST …/approve|deny|revoke, PATCH …/memory|role */
export interface DeviceResponse {
  device: Device
}
export interface DeviceDetailResponse {
  device: Device
  allocation_history: AllocationChange[]
  usage: UsageTotals
}
export interface AddDeviceRequest {
  name: string
  ip: string
  platform?: string
}
export interface ApproveRequest {
  role_id: string
}
export interface AllocationRequest {
  memory_mb: number
}
export interface SetRoleRequest {
  role_id: string
}
/**
 * PATCH /api/devices/:id/limits: the device's own budgets and hours (any subset); null falls back to the
 * role's. Answers DeviceResponse.
 */
export interface DeviceLimitsRequest {
  token_budget_day?: number | null
  token_budget_week?: number | null
  token_budget_month?: number | null
  allowed_hours?: AllowedHours | null
}
/** POST /api/devices/:id/rotate-key: the new key, shown once. */
export interface RotateKeyResponse {
  device_key: string
}

/** GET /api/permissions/roles */
export interface RolesResponse {
  roles: Role[]
}
/** POST/PUT/DELETE /api/permissions/roles[/:id] */
export interface RoleResponse {
  role: Role
}

export interface ModelFit {
  role_id: string
  verdict: FitVerdict
  /** Estimated MiB to load at the default context; null when unknown. */
  required_mb: number | null
  /** The shape could not be read and the figure is conservative: "estimated conservatively", not "fits". */
  conservative: boolean
}
export interface ModelView extends ModelInfo {
  /** Fit verdict for each role's maximum memory. */
  fits: ModelFit[]
  /** Can it load now, at the default context, against the host's free memory. */
  load: LoadVerdict
  loaded: boolean
  /** Runs on ollama.com: prompts leave the network (needs the role's allow_cloud and cloud_models_enabled). */
  cloud: boolean
  /** "cloud, leaves the network" for cloud models. */
  cloud_note?: string
  /** The last load of this digest: `/api/ps` size against the gateway's estimate at that context. */
  measurement: FitMeasurement | null
}
export interface FitMeasurement {
  context_length: number
  estimate_mb: number
  measured_mb: number
  /** measured / estimate; later estimates of this model are scaled by it. */
  ratio: number
}
/** GET /api/models */
export interface ModelsResponse {
  models: ModelView[]
}
/** GET /api/models/running */
export interface RunningModelsResponse {
  models: RunningModel[]
}
/** POST /api/models/pull `{ name }` answers NDJSON: PullProgress lines, then `{ status: 'success' }` or `{ error }`. */
export interface PullRequest {
  name: string
}
export type PullStreamLine =
  | PullProgress
  | { name: string; status: 'success' }
  | { name: string; error: string }
/** GET /api/models/pulls: pulls in progress. */
export interface PullsResponse {
  pulls: PullProgress[]
}

/** GET /api/ollama/status */
export type OllamaStatusResponse = OllamaStatus

export interface SettingEntry {
  key: SettingKey
  value: unknown
  default: unknown
  description: string
  type: string
}
/** GET /api/settings */
export interface SettingsResponse {
  settings: SettingEntry[]
}
/** PUT /api/settings/:key `{ value }` */
export interface SettingUpdateResponse {
  key: SettingKey
  value: unknown
}

/** GET /api/audit?limit=&before= */
export interface AuditResponse {
  entries: AuditEntry[]
}

export interface UsageTotals {
  requests: number
  prompt_tokens: number
  completion_tokens: number
}
export interface UsageRow extends UsageTotals {
  device_id: string | null
  device_name: string | null
  model: string | null
}
/** GET /api/usage (admin) */
export interface UsageResponse {
  by_device_model: UsageRow[]
  recent: UsageRecord[]
}

/** POST /api/join (anyone on the LAN) */
export interface JoinRequest {
  name: string
  platform?: string
  pairing_code?: string
  /** A peer sharedLLM host's instance id, so an mDNS discovery and its join are one device. */
  instance_id?: string
}
export interface JoinResponse {
  request_id: string
  claim_secret: string
  device_id: string
  status: Device['status']
}
/** GET /api/join/:request_id with header `X-Claim-Secret`. `device_key` appears exactly once. */
export interface ClaimResponse {
  status: Device['status']
  device_id: string
  device_key?: string
}

/** POST /api/pairing `{ role_id }` (admin) */
export interface PairingRequest {
  role_id: string
}
export interface PairingResponse {
  code: string
  expires_at: number
  role_id: string
  /** Path to open on the phone, e.g. `/join?code=…`; the client prefixes the host's address. */
  path: string
}

export interface MeModel {
  name: string
  size: number
  verdict: FitVerdict
  required_mb: number | null
  /** Can it load now, at the role's context, against the host's free memory. */
  load: LoadVerdict
  /** The shape could not be read and the figure is conservative: show "estimated conservatively", not "fits". */
  conservative: boolean
  /** Runs on ollama.com: prompts leave the network. */
  cloud: boolean
  cloud_note?: string
}
/** GET /api/me (device key) */
export interface MeResponse {
  device: Device
  role: Role | null
  usage: UsageTotals
  models: MeModel[]
  /** Remaining budget per window (with its reset) and the next change of the allowed hours. */
  limits?: DeviceLimitsView
}

/**
 * GET /api/tls (anyone, over HTTP and HTTPS): how to reach this host over
 * HTTPS and which certificate authority to trust. `https_urls` starts with the name the caller used
 * (unless it is loopback, which a phone cannot use);
 * with HTTPS off every field is null or empty.
 */
export interface TlsInfoResponse {
  /** null when HTTPS is off. */
  https_port: number | null
  /** The plain-HTTP port, where a device that does not trust the CA yet downloads it (`/ca.crt`). */
  http_port: number | null
  /** SHA-256 of the host CA certificate, colon-separated uppercase hex (as browsers show it). */
  ca_fingerprint: string | null
  https_urls: string[]
}

/** GET /api/peers (admin): other sharedLLM hosts found on the LAN. Claimed keys never appear. */
export interface PeersResponse {
  peers: Peer[]
}
/** POST /api/peers/:id/join (admin) */
export interface PeerResponse {
  peer: Peer
}
/** GET /api/peers/:id/models (admin): the remote host's models, listed through its gateway with our key. */
export interface PeerModelsResponse {
  models: unknown[]
}

/**
 * GET /api/usage/series?group=device|model&bucket=hour|day|week&from=&to= (admin; a device gets its own):
 * tokens over time from the hourly rollups. `buckets` are the starts of every local hour or day in the
 * range (UTC ms); each series' arrays are aligned with it. GET /api/usage/export.csv takes the same query.
 */
/** Bucket sizes of the usage series: local hours, local days, ISO weeks (from Monday) of the host's zone. */
export type UsageBucket = 'hour' | 'day' | 'week'

export interface UsageSeriesResponse {
  group: 'device' | 'model'
  bucket: UsageBucket
  from: number
  to: number
  /** The host's IANA time zone, which the buckets follow. */
  time_zone: string
  buckets: number[]
  series: Array<{
    /** Device id ('' for the host owner) or model name ('' when unknown). */
    key: string
    label: string
    requests: number[]
    errors: number[]
    prompt_tokens: number[]
    completion_tokens: number[]
    /** Queue wait of this series' queued requests per bucket (ms); null where none went through the queue. */
    queue_wait_p50_ms: Array<number | null>
    queue_wait_p95_ms: Array<number | null>
  }>
  /** Queue wait over every series per bucket (percentiles do not add up, so they are merged here). */
  queue_wait: {
    /** Requests that went through the fair-share queue. */
    queued: number[]
    p50_ms: Array<number | null>
    p95_ms: Array<number | null>
  }
}

/** One installed model in a peer's status: what the origin needs to list it and estimate its fit. */
export interface PeerStatusModel {
  name: string
  model: string
  digest: string
  size: number
  modified_at: string
  details: ModelInfo['details']
  /** KV cache bytes per token of context (f16), from the model's shape; null when it cannot be read. */
  kv_bytes_per_token: number | null
}

/** One loaded model in a peer's status (Ollama's `/api/ps`). */
export interface PeerStatusLoaded {
  name: string
  digest: string
  size: number
  size_vram: number
  context_length: number | null
  expires_at: string | null
}

/**
 * GET /api/peer/status (a paired sharedLLM host, with the device key this host gave it): what the caller
 * needs to route to this host. Models are those the caller's role here may use.
 */
export interface PeerStatusResponse {
  instance_id: string
  name: string
  version: string
  /** Free memory of the primary memory devices (last sample), MiB; null while unknown. */
  free_mb: number | null
  total_mb: number | null
  /** The caller's allocation here: a routed request's estimate must fit it. */
  allocation_mb: number
  /** Model name patterns the caller's role here allows (empty: all). */
  allowed_models: string[]
  ollama_running: boolean
  installed: PeerStatusModel[]
  loaded: PeerStatusLoaded[]
  /** Requests waiting per model in this host's fair-share queue, once it has one. */
  queue?: Record<string, number>
  /**
   * Per model with requests running or waiting here: how long a request arriving now would likely wait
   * before it starts, in ms (`FairScheduler.expectedWaitMs`). A model absent here and from `queue` waits 0.
   */
  queue_wait_ms?: Record<string, number>
}

/** A host of the pool as `GET /api/pool` shows it. */
export interface PoolHost {
  /** `self` for this host, else the peer's id. */
  id: string
  name: string
  self: boolean
  up: boolean
  version: string | null
  free_mb: number | null
  total_mb: number | null
  latency_ms: number | null
  breaker: PeerBreakerState | null
  /** Why its last status poll failed (null: it answered; always null for this host). */
  last_error: string | null
  installed: string[]
  loaded: string[]
}

/**
 * GET /api/pool (the owner or a device): every host of the pool with its memory, and where each model lives.
 * A device sees the models its role allows.
 */
export interface PoolResponse {
  routing: 'off' | 'local_first' | 'balanced'
  hosts: PoolHost[]
  models: Array<{ name: string; hosts: Array<{ id: string; name: string; loaded: boolean }> }>
}

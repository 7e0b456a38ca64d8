import type {
  AddDeviceRequest,
  AuditResponse,
  ClaimResponse,
  DeviceDetailResponse,
  DeviceLimitsRequest,
  DeviceResponse,
  DevicesResponse,
  GpuResponse,
  JoinRequest,
  JoinResponse,
  MeResponse,
  ModelsResponse,
  OllamaStatusResponse,
  PairingResponse,
  PeerResponse,
  PeersResponse,
  PoolResponse,
  PullsResponse,
  PullStreamLine,
  QueuePauseResponse,
  QueueReclaimResponse,
  QueueResponse,
  Role,
  RoleResponse,
  RotateKeyResponse,
  RolesResponse,
  RunningModelsResponse,
  SessionResponse,
  SettingKey,
  SettingsResponse,
  SettingUpdateResponse,
  TlsInfoResponse,
  UsageResponse,
  UsageBucket,
  UsageSeriesResponse,
} from '@sharedllm/core/protocol'
import { rawRequest, readNdjson, request } from './http'

/**
 * A role as the role editor sends it: the fields it shows, and optionally the rest (fair share, budgets,
 * hours, body and predict limits), which the API defaults for a new role and leaves as they are on an edit.
 */
export type RoleFields = Pick<
  Role,
  | 'name'
  | 'max_memory_mb'
  | 'can_pull'
  | 'trust_level'
  | 'allowed_models'
  | 'requests_per_minute'
  | 'max_concurrent'
  | 'max_keep_alive_s'
  | 'max_context_tokens'
> &
  Partial<Omit<Role, 'id' | 'builtin' | 'created_at' | 'updated_at'>>

const enc = encodeURIComponent

/** The query of `GET /api/usage/series` and `/api/usage/export.csv`. */
export interface UsageSeriesQuery {
  group: 'device' | 'model'
  bucket: UsageBucket
  from: number
  to: number
}
export const usageQueryString = (q: UsageSeriesQuery) =>
  `group=${q.group}&bucket=${q.bucket}&from=${Math.floor(q.from)}&to=${Math.floor(q.to)}`

/** Every REST call the PWA makes, typed from `@sharedllm/core/protocol`. */
export const api = {
  session: (bearer?: string) =>
    request<SessionResponse>('/api/auth/session', bearer === undefined ? {} : { bearer }),
  login: (secret: string) =>
    request<SessionResponse | undefined>('/api/auth/login', {
      method: 'POST',
      body: { secret },
      bearer: null,
    }),
  logout: () => request<void>('/api/auth/logout', { method: 'POST', bearer: null }),

  gpu: () => request<GpuResponse>('/api/gpu'),
  ollamaStatus: () => request<OllamaStatusResponse>('/api/ollama/status'),

  devices: () => request<DevicesResponse>('/api/devices'),
  device: (id: string) => request<DeviceDetailResponse>(`/api/devices/${enc(id)}`),
  addDevice: (body: AddDeviceRequest) => request<DeviceResponse>('/api/devices', { method: 'POST', body }),
  approve: (id: string, role_id: string) =>
    request<DeviceResponse>(`/api/devices/${enc(id)}/approve`, { method: 'POST', body: { role_id } }),
  deny: (id: string) => request<DeviceResponse>(`/api/devices/${enc(id)}/deny`, { method: 'POST' }),
  revoke: (id: string) => request<DeviceResponse>(`/api/devices/${enc(id)}/revoke`, { method: 'POST' }),
  remove: (id: string) => request<DeviceResponse>(`/api/devices/${enc(id)}`, { method: 'DELETE' }),
  setAllocation: (id: string, memory_mb: number) =>
    request<DeviceResponse>(`/api/devices/${enc(id)}/memory`, { method: 'PATCH', body: { memory_mb } }),
  rotateKey: (id: string) =>
    request<RotateKeyResponse>(`/api/devices/${enc(id)}/rotate-key`, { method: 'POST' }),
  setRole: (id: string, role_id: string) =>
    request<DeviceResponse>(`/api/devices/${enc(id)}/role`, { method: 'PATCH', body: { role_id } }),

  setLimits: (id: string, body: DeviceLimitsRequest) =>
    request<DeviceResponse>(`/api/devices/${enc(id)}/limits`, { method: 'PATCH', body }),
  grantHour: (id: string) =>
    request<{ device_id: string; granted_until: number }>(`/api/devices/${enc(id)}/hours/grant`, {
      method: 'POST',
    }),

  pool: () => request<PoolResponse>('/api/pool'),
  peers: () => request<PeersResponse>('/api/peers'),
  joinPeer: (id: string) => request<PeerResponse>(`/api/peers/${enc(id)}/join`, { method: 'POST' }),

  queue: () => request<QueueResponse>('/api/queue'),
  pauseRole: (role_id: string) =>
    request<QueuePauseResponse>('/api/queue/pause', { method: 'POST', body: { role_id } }),
  resumeRole: (role_id: string) =>
    request<QueuePauseResponse>('/api/queue/resume', { method: 'POST', body: { role_id } }),
  reclaim: () => request<QueueReclaimResponse>('/api/queue/reclaim', { method: 'POST', body: {} }),
  usageSeries: (q: UsageSeriesQuery) =>
    request<UsageSeriesResponse>(`/api/usage/series?${usageQueryString(q)}`),
  /** The CSV of the same view, as text (the key or cookie goes with it; a plain link could not send the key). */
  usageCsv: async (q: UsageSeriesQuery) =>
    (
      await rawRequest(`/api/usage/export.csv?${usageQueryString(q)}`, { headers: { accept: 'text/csv' } })
    ).text(),

  roles: () => request<RolesResponse>('/api/permissions/roles'),
  createRole: (body: RoleFields) => request<RoleResponse>('/api/permissions/roles', { method: 'POST', body }),
  updateRole: (id: string, body: Partial<RoleFields>) =>
    request<RoleResponse>(`/api/permissions/roles/${enc(id)}`, { method: 'PUT', body }),
  deleteRole: (id: string) =>
    request<RoleResponse>(`/api/permissions/roles/${enc(id)}`, { method: 'DELETE' }),

  models: () => request<ModelsResponse>('/api/models'),
  runningModels: () => request<RunningModelsResponse>('/api/models/running'),
  pulls: () => request<PullsResponse>('/api/models/pulls'),
  deleteModel: (name: string, force = false) =>
    request<void>(`/api/models/${enc(name)}${force ? '?force=true' : ''}`, { method: 'DELETE' }),
  cancelPull: (name: string) => request<void>(`/api/models/pull/${enc(name)}`, { method: 'DELETE' }),
  /** Streams pull progress; aborting `signal` also cancels the pull on the host. */
  async *pull(name: string, signal: AbortSignal): AsyncGenerator<PullStreamLine> {
    const res = await rawRequest('/api/models/pull', { method: 'POST', body: { name }, signal })
    yield* readNdjson<PullStreamLine>(res)
  },

  settings: () => request<SettingsResponse>('/api/settings'),
  setSetting: (key: SettingKey, value: unknown) =>
    request<SettingUpdateResponse>(`/api/settings/${enc(key)}`, { method: 'PUT', body: { value } }),

  audit: (limit = 100, before?: number) =>
    request<AuditResponse>(`/api/audit?limit=${limit}${before ? `&before=${before}` : ''}`),
  usage: () => request<UsageResponse>('/api/usage'),
  pairing: (role_id: string) =>
    request<PairingResponse>('/api/pairing', { method: 'POST', body: { role_id } }),

  join: (body: JoinRequest) => request<JoinResponse>('/api/join', { method: 'POST', body, bearer: null }),
  claim: (requestId: string, claimSecret: string) =>
    request<ClaimResponse>(`/api/join/${enc(requestId)}`, {
      headers: { 'x-claim-secret': claimSecret },
      bearer: null,
    }),
  me: () => request<MeResponse>('/api/me'),
  /** Public: the HTTPS port and CA fingerprint, to guide a device to the secure app. */
  tls: () => request<TlsInfoResponse>('/api/tls', { bearer: null }),
}

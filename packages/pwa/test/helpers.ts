import type { Device, Role } from '@sharedllm/core/protocol'
import { vi } from 'vitest'

export interface Call {
  method: string
  path: string
  body: unknown
  headers: Record<string, string>
}
type Handler = (call: Call) => { status?: number; body?: unknown } | undefined

/**
 * Stands in for the host at the fetch boundary: answers by `METHOD /path` and records every call, so a
 * component test asserts what the component sent. Unknown routes answer 404 like the real API.
 */
export function stubHost(routes: Record<string, Handler>) {
  const calls: Call[] = []
  const fetchImpl = async (input: RequestInfo | URL, init: RequestInit = {}) => {
    const url = new URL(String(input), 'http://host.test')
    const headers = Object.fromEntries(new Headers(init.headers).entries())
    const call: Call = {
      method: init.method ?? 'GET',
      path: url.pathname + url.search,
      body: typeof init.body === 'string' ? JSON.parse(init.body) : undefined,
      headers,
    }
    calls.push(call)
    const handler = routes[`${call.method} ${url.pathname}`]
    const res = handler?.(call) ?? {
      status: 404,
      body: { error: `no route ${call.method} ${url.pathname}`, code: 'NOT_FOUND' },
    }
    return new Response(res.body === undefined ? null : JSON.stringify(res.body), {
      status: res.status ?? 200,
      headers: { 'content-type': 'application/json' },
    })
  }
  vi.stubGlobal('fetch', vi.fn(fetchImpl))
  return { calls }
}

let seq = 0
export function device(over: Partial<Device> = {}): Device {
  seq++
  return {
    id: `dev-${seq}`,
    name: `Phone ${seq}`,
    ip: '192.168.1.20',
    platform: 'android',
    source: 'join',
    status: 'pending',
    role_id: null,
    allocation_mb: 0,
    online: true,
    last_seen: Date.now(),
    instance_id: null,
    can_manage: false,
    token_budget_day: null,
    token_budget_week: null,
    token_budget_month: null,
    allowed_hours: null,
    created_at: 1_700_000_000_000 + seq,
    updated_at: 1_700_000_000_000 + seq,
    ...over,
  }
}

export const builtinRoles: Role[] = [
  role('role-admin', 'admin', 16384, { can_pull: true, trust_level: 3, max_concurrent: 4 }),
  role('role-user', 'user', 8192, { can_pull: true, trust_level: 2, max_concurrent: 4 }),
  role('role-guest', 'guest', 2048, { trust_level: 1, requests_per_minute: 30 }),
]

export function role(id: string, name: string, max: number, over: Partial<Role> = {}): Role {
  return {
    id,
    name,
    max_memory_mb: max,
    can_pull: false,
    trust_level: 1,
    allowed_models: [],
    requests_per_minute: null,
    max_concurrent: 1,
    max_keep_alive_s: null,
    max_context_tokens: null,
    share_weight: 1,
    max_queued: 2,
    max_wait_s: 60,
    allow_cloud: false,
    token_budget_day: null,
    token_budget_week: null,
    token_budget_month: null,
    allowed_hours: null,
    max_body_bytes: 1024 * 1024,
    max_predict_tokens: null,
    builtin: id.startsWith('role-'),
    created_at: 1,
    updated_at: 1,
    ...over,
  }
}

export const flush = () => new Promise((r) => setTimeout(r, 0))

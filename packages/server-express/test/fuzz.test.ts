import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { listen, type RunningServer } from '../src/listen'
import { ADMIN, type Harness, setup } from './helpers'

// Random paths, methods, bodies and credentials against the live API: never a 5xx, and a rejected request
// (4xx) never changes the devices, roles or settings. Model routes are left out: with no Ollama running they
// answer 503 by design.
let h: Harness
let srv: RunningServer
let base: string
let deviceId: string

beforeAll(async () => {
  h = await setup()
  srv = await listen(h.hub, { port: 0, host: '127.0.0.1', pwaDir: h.pwaDir, bodyLimit: 4096 })
  base = `http://127.0.0.1:${srv.port}`
  deviceId = (await h.hub.devices.add({ name: 'seed', ip: '10.1.1.1' })).id
})
afterAll(async () => {
  await srv.close()
  await h.cleanup()
})

async function state(): Promise<string> {
  const [devices, roles] = await Promise.all([h.hub.devices.list(), h.hub.roles.list()])
  return JSON.stringify({ devices, roles, settings: h.hub.settings.list() })
}

const segment = fc.oneof(
  fc.constantFrom(
    'role-user',
    'role-guest',
    'role-admin',
    'host_reserve_mb',
    'default_role',
    'api_port',
    '..',
    '%00',
    '%E0%A4%A',
    '%2F',
  ),
  fc.string({ maxLength: 20 }).map(encodeURIComponent),
  fc.uuid(),
  fc.constant('SEED'),
)
const template = fc.constantFrom(
  '/api/devices',
  '/api/devices/:x',
  '/api/devices/:x/approve',
  '/api/devices/:x/deny',
  '/api/devices/:x/revoke',
  '/api/devices/:x/memory',
  '/api/devices/:x/role',
  '/api/devices/:x/rotate-key',
  '/api/permissions/roles',
  '/api/permissions/roles/:x',
  '/api/settings',
  '/api/settings/:x',
  '/api/audit?limit=:x',
  '/api/devices?status=:x',
  '/api/join',
  '/api/join/:x',
  '/api/pairing',
  '/api/auth/login',
  '/api/auth/logout',
  '/api/auth/session',
  '/api/gpu',
  '/api/openapi.json',
  '/healthz',
  '/:x',
  '/api/:x',
  '/ws',
)
const fieldValue = fc.oneof(
  fc.jsonValue({ maxDepth: 2 }),
  fc.integer({ min: -5, max: 70000 }),
  fc.constantFrom('role-user', 'role-guest', '10.0.0.1', '::1', 'llama3*', '', ' ', 'x'.repeat(300)),
)
const body = fc.oneof(
  fc.constant(undefined),
  fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)),
  fc
    .dictionary(
      fc.constantFrom(
        'name',
        'ip',
        'role_id',
        'memory_mb',
        'value',
        'secret',
        'max_memory_mb',
        'allowed_models',
        'can_pull',
        'pairing_code',
        '__proto__',
        'constructor',
      ),
      fieldValue,
      { maxKeys: 5 },
    )
    .map((v) => JSON.stringify(v)),
  fc.string({ maxLength: 40 }), // usually not JSON at all
  fc.constant(`{"name":"${'a'.repeat(5000)}"}`), // over the body limit
)
const request = fc.record({
  method: fc.constantFrom('GET', 'POST', 'PUT', 'PATCH', 'DELETE'),
  path: fc.tuple(template, segment).map(([t, s]) => t.replace(':x', s)),
  body,
  contentType: fc.constantFrom(
    'application/json',
    'text/plain',
    'application/json; charset=latin1',
    undefined,
  ),
  auth: fc.constantFrom<Record<string, string>>(ADMIN, {}, { Authorization: 'Bearer sllm_nope' }),
})

describe('API fuzz', () => {
  it('never answers 5xx and never changes state on a rejected request (2,000 requests)', async () => {
    let before = await state()
    let accepted = 0
    await fc.assert(
      fc.asyncProperty(request, async (r) => {
        const path = r.path.replace('SEED', deviceId)
        const headers: Record<string, string> = { ...r.auth }
        if (r.contentType) headers['content-type'] = r.contentType
        const res = await fetch(base + path, {
          method: r.method,
          headers,
          ...(r.body !== undefined && r.method !== 'GET' ? { body: r.body } : {}),
        })
        await res.arrayBuffer()
        expect(res.status, `${r.method} ${path} ${r.body}`).toBeLessThan(500)
        const after = await state()
        if (res.status >= 400)
          expect(after, `${r.method} ${path} changed state with ${res.status}`).toBe(before)
        else accepted++
        before = after
      }),
      { numRuns: 2000 },
    )
    expect(accepted).toBeGreaterThan(0)
  }, 120_000)
})

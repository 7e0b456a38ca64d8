import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { listen, type RunningServer } from '../src/listen'
import { ADMIN, approvedDevice, type Harness, setup } from './helpers'

// Random paths, methods, bodies and credentials (the owner, an admin-role device without "manage", a guest
// device, junk) against the live API: never a 5xx, and a rejected unsafe request (4xx) changes nothing:
// devices, roles, settings, peers, keys, join requests, pairing codes and the audit log are compared after
// every one. Model routes are left out: with no Ollama running they answer 503 by design. The limits are
// raised so the handlers, not the rate limits, answer (the limits have their own tests).
const UNLIMITED = 1_000_000_000
let h: Harness
let srv: RunningServer
let base: string
let deviceId: string
let peerId: string
let requestId: string
const creds: Array<Record<string, string>> = [ADMIN, {}, { Authorization: 'Bearer sllm_nope' }]

beforeAll(async () => {
  h = await setup({
    hub: {
      adminAuth: { backoff: { freeFailures: UNLIMITED, globalPerMinute: UNLIMITED } },
      access: {
        joinsPerMinute: UNLIMITED,
        globalJoinsPerMinute: UNLIMITED,
        claimsPerMinute: UNLIMITED,
        maxPending: UNLIMITED,
        pairingBackoff: { freeFailures: UNLIMITED, globalPerMinute: UNLIMITED },
        notices: { individual: UNLIMITED },
      },
    },
  })
  srv = await listen(h.hub, { port: 0, host: '127.0.0.1', pwaDir: h.pwaDir, bodyLimit: 4096 })
  base = `http://127.0.0.1:${srv.port}`
  deviceId = (await h.hub.devices.add({ name: 'seed', ip: '10.1.1.1' })).id
  const boss = await approvedDevice(h.hub, 'admin laptop', 'role-admin')
  const kid = await approvedDevice(h.hub, 'kid phone', 'role-guest')
  creds.push({ Authorization: `Bearer ${boss.key}` }, { Authorization: `Bearer ${kid.key}` })
  requestId = (await h.hub.access.join({ name: 'waiting phone' }, '10.1.1.2')).request_id
  const now = Date.now()
  peerId = 'peer-fuzz'
  await h.hub.db('peers').insert({
    id: peerId,
    instance_id: 'fuzz-instance-0001',
    name: 'gpu box',
    addresses: JSON.stringify(['127.0.0.9']),
    port: 9,
    last_seen: now,
    online: false,
    status: 'discovered',
    created_at: now,
    updated_at: now,
  })
})
afterAll(async () => {
  await srv.close()
  await h.cleanup()
})

/** Rows written on the store's one connection so far: unchanged means nothing was written at all. */
async function writes(): Promise<number> {
  const [row] = (await h.hub.db.raw('SELECT total_changes() AS n')) as Array<{ n: number }>
  return Number(row?.n)
}

async function state(): Promise<string> {
  const db = h.hub.db
  const [devices, roles, peers, keys, joins, codes, audit] = await Promise.all([
    h.hub.devices.list(),
    h.hub.roles.list(),
    db('peers').select().orderBy('id'),
    db('device_keys').select('id', 'device_id', 'key_hash', 'revoked_at').orderBy('id'),
    db('join_requests').select('id', 'device_id', 'claimed_at').orderBy('id'),
    // A wrong pairing code costs the code it names an attempt: by design, so attempts are not compared.
    db('pairing_codes').select('id', 'code_hash', 'role_id', 'used_at', 'used_by').orderBy('id'),
    db('audit_log').count({ n: '*' }).first(),
  ])
  const settingsJson = JSON.stringify(h.hub.settings.list())
  return JSON.stringify({ devices, roles, settingsJson, peers, keys, joins, codes, audit })
}

const segment = fc.oneof(
  fc.constantFrom(
    'role-user',
    'role-guest',
    'role-admin',
    'host_reserve_mb',
    'default_role',
    'api_port',
    'ollama_bin',
    'ollama_host',
    'extra_providers',
    'trust_local_network',
    'auto_join_discovered_hosts',
    '..',
    '%00',
    '%E0%A4%A',
    '%2F',
  ),
  fc.string({ maxLength: 20 }).map(encodeURIComponent),
  fc.uuid(),
  fc.constant('SEED'),
  fc.constant('PEER'),
  fc.constant('REQUEST'),
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
  '/api/devices/:x/manage',
  '/api/peers',
  '/api/peers/:x/join',
  '/api/peers/:x/models',
  '/api/peer/status',
  '/api/pool',
  '/api/tls',
  '/ca.crt',
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
  fc.constantFrom(
    'role-user',
    'role-guest',
    'role-admin',
    '10.0.0.1',
    '::1',
    'llama3*',
    '',
    ' ',
    'x'.repeat(300),
    'invoice\u202Egnp.exe',
    '\uFEFF\u200B',
    'Ｐｈｏｎｅ',
    '/usr/bin/touch',
    'http://192.168.1.9:11434',
    'http://[::ffff:7f00:1]:11434',
    'ACDEFGHJKM',
    'fuzz-instance-0001',
    true,
    false,
  ),
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
        'platform',
        'instance_id',
        'can_manage',
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
  auth: fc.nat({ max: 4 }),
  claimSecret: fc.constantFrom(undefined, 'wrong', ''),
})

describe('API fuzz', () => {
  it('never answers 5xx and never changes state on a rejected request (10,000 requests)', async () => {
    let before = await state()
    let written = await writes()
    let settingsBefore = JSON.stringify(h.hub.settings.list())
    let accepted = 0
    await fc.assert(
      fc.asyncProperty(request, async (r) => {
        const path = r.path.replace('SEED', deviceId).replace('PEER', peerId).replace('REQUEST', requestId)
        const headers: Record<string, string> = { ...creds[r.auth] }
        if (r.contentType) headers['content-type'] = r.contentType
        if (r.claimSecret !== undefined) headers['x-claim-secret'] = r.claimSecret
        const res = await fetch(base + path, {
          method: r.method,
          headers,
          ...(r.body !== undefined && r.method !== 'GET' ? { body: r.body } : {}),
        })
        await res.arrayBuffer()
        // `..` can land on the model routes, which answer 503 without an Ollama (by design, see above).
        const landed = new URL(base + path).pathname
        if (!landed.startsWith('/api/models'))
          expect(res.status, `${r.method} ${path} ${r.body}`).toBeLessThan(500)
        if (r.method === 'GET') {
          if (res.status < 400) accepted++
          return
        }
        // Fast path: no row written and the same settings in memory is the same state.
        const nowWritten = await writes()
        const settings = JSON.stringify(h.hub.settings.list())
        if (res.status < 400) accepted++
        if (nowWritten === written && settings === settingsBefore) return
        written = nowWritten
        settingsBefore = settings
        const after = await state()
        if (res.status >= 400)
          expect(after, `${r.method} ${path} changed state with ${res.status}`).toBe(before)
        before = after
      }),
      { numRuns: 10_000 },
    )
    expect(accepted).toBeGreaterThan(100)
    // The code-running settings were never set, whatever the fuzzer sent.
    expect(h.hub.settings.get('ollama_bin')).toBeNull()
    expect(h.hub.settings.get('extra_providers')).toEqual([])
    expect(h.hub.settings.get('ollama_host')).toBe('http://127.0.0.1:11434')
  }, 240_000)
})

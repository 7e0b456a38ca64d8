import { readFileSync } from 'node:fs'
import { Agent, request } from 'node:http'
import { join } from 'node:path'
import { GATEWAY_ROUTES } from '../src/index'
import { fakeOllamaDir } from '../src/testing/index'
import fc from 'fast-check'
import { afterAll, beforeAll, expect, it } from 'vitest'
import {
  ADMIN_SECRET,
  type GatewayHarness,
  type MockUpstream,
  startGateway,
  startMockUpstream,
} from './gateway-harness'

const fixture = (name: string) => readFileSync(join(fakeOllamaDir, 'fixtures', name), 'utf8')

// What Ollama may ever see from the gateway (its own catalog reads are tags, ps and show: all listed).
const ALLOWED = new Set([...GATEWAY_ROUTES.values()].map((r) => `${r.method} ${r.upstream}`))

let h: GatewayHarness
let upstream: MockUpstream
let key: string
const seen: string[] = []
const agent = new Agent({ keepAlive: true, maxSockets: 25 })

beforeAll(async () => {
  const tags = fixture('api-tags-16-models-local.json')
  const show = fixture('api-show-dolphin3-8b-local-windows.json')
  upstream = await startMockUpstream((req, res) => {
    seen.push(`${req.method} ${req.url}`)
    req.resume()
    req.on('end', () => {
      const body =
        req.url === '/api/tags' ? tags : req.url === '/api/show' ? show : '{"models":[],"done":true}'
      res.writeHead(200, { 'content-type': 'application/json' }).end(body)
    })
  })
  h = await startGateway({ fake: false, upstream: upstream.url })
  const roleId = await h.role({ name: 'fuzz', max_memory_mb: 65536, max_concurrent: 100, can_pull: true })
  ;({ key } = await h.device('fuzzer', roleId))
})
afterAll(async () => {
  agent.destroy()
  await h.close()
  await upstream.close()
})

const segment = fc.oneof(
  fc.constantFrom(
    'ollama',
    'OLLAMA',
    'v1',
    'api',
    'chat',
    'generate',
    'embed',
    'embeddings',
    'tags',
    'show',
    'ps',
    'version',
    'pull',
    'push',
    'create',
    'copy',
    'delete',
    'blobs',
    'sha256:29fdb92e57cf082e',
    'completions',
    'models',
    'files',
    'responses',
    '..',
    '.',
    '',
    '%2e%2e',
    '%2E',
    '%2F',
    '%5C',
    '%00',
    'api%2Fdelete',
    'chat%00',
    'metrics',
    '__fake',
    'requests',
    ';',
    'chat;x',
    'chat.json',
    '~',
  ),
  fc.stringMatching(/^[A-Za-z0-9._~%:-]{0,10}$/),
)
const pathArb = fc
  .tuple(
    fc.constantFrom(
      '/ollama/api/',
      '/ollama/',
      '/v1/',
      '/',
      '//ollama/api/',
      '/ollama/api/../',
      '/v1/../ollama/api/',
    ),
    fc.array(segment, { minLength: 0, maxLength: 4 }),
    fc.constantFrom('', '/', '?', '?x=1', '?path=/api/delete', '#frag', '/..', '/./'),
  )
  .map(([prefix, segs, tail]) => prefix + segs.join('/') + tail)
const caseArb = fc.record({
  method: fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS', 'COPY', 'PROPFIND'),
  path: fc.oneof(pathArb, fc.constantFrom(...GATEWAY_ROUTES.keys())),
  admin: fc.boolean(),
  model: fc.constantFrom('qwen3:1.7b', 'llama3', '../../x', 'evil.example.com/a/b', '', 'hf.co/u/m'),
})

function send(c: { method: string; path: string; admin: boolean; model: string }): Promise<number> {
  const body =
    c.method === 'GET' || c.method === 'HEAD' ? '' : JSON.stringify({ model: c.model, name: c.model })
  return new Promise((resolve, reject) => {
    const req = request(`${h.url}${c.path}`, {
      method: c.method,
      agent,
      headers: {
        Authorization: `Bearer ${c.admin ? ADMIN_SECRET : key}`,
        'content-type': 'application/json',
        // Node sends DELETE/OPTIONS bodies without a length unless told; the server would then misread them.
        'content-length': Buffer.byteLength(body),
      },
    })
    req.on('response', (res) => {
      res.resume()
      res.on('end', () => resolve(res.statusCode ?? 0))
    })
    req.on('error', reject)
    req.end(body || undefined)
  })
}

it('10,000 random paths and methods reach no Ollama endpoint outside the allowlist', async () => {
  let cases = 0
  let forwarded = 0
  await fc.assert(
    fc.asyncProperty(fc.array(caseArb, { minLength: 25, maxLength: 25 }), async (batch) => {
      const before = seen.length
      const statuses = await Promise.all(batch.map(send))
      cases += batch.length
      // No crash (500), no dropped connection, no misparsed request (400 only from our own validation).
      for (const s of statuses) expect([0, 500]).not.toContain(s)
      for (const hit of seen.slice(before)) {
        // Exact method and path, no query string: only the route table's constants go upstream.
        expect(ALLOWED.has(hit), hit).toBe(true)
        forwarded++
      }
    }),
    { numRuns: 400 },
  )
  expect(cases).toBeGreaterThanOrEqual(10_000)
  // Not vacuous: allowed routes were hit and forwarded many times.
  expect(forwarded).toBeGreaterThan(100)
  expect(seen.some((s) => /delete|create|push|copy|blobs/.test(s))).toBe(false)
}, 120_000)

import { execFileSync, spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type Admission, GATEWAY_ROUTES, normaliseModelName } from '../src/index'
import { fakeOllamaDir } from '../src/testing/index'
import {
  type GatewayHarness,
  type MockUpstream,
  post,
  startGateway,
  startMockUpstream,
  TEST_UA,
} from './gateway-harness'

// Ground truth for what Ollama reads: Go's own encoding/json (case-insensitive keys with Unicode simple
// folding, last match wins), run on the exact bytes the gateway forwarded, decoded into structs with the
// json tags of Ollama's request structs (test/go-decode/main.go). Go comes from Debian's golang-go.
const goBin = spawnSync('go', ['version'], { encoding: 'utf8' })
const haveGo = goBin.status === 0
if (!haveGo && (process.env.CI || process.env.SHAREDLLM_CI)) {
  throw new Error('Go is required for the encoding/json ground-truth test: apt-get install -y golang-go')
}
if (!haveGo) console.warn('gateway-go-json: skipped, `go` is not installed (apt-get install -y golang-go)')

type Decoded = Record<string, unknown>

/** Decodes each raw body as Ollama's Go code would, for its route's request struct. */
function goDecode(inputs: { shape: string; body: string }[]): Decoded[] {
  const out = execFileSync(decoder, [], {
    input: inputs.map((i) => JSON.stringify(i)).join('\n'),
    encoding: 'utf8',
    maxBuffer: 256 * 1024 * 1024,
  })
  return out
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Decoded)
}

let decoder: string
let dir: string

/** Null is how both sides say "absent" (Go leaves the pointer nil; Ollama treats it as not set). */
function withoutNulls(o: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== null && v !== undefined))
}

// Field names per route, as Ollama's structs spell them, and values that pass or fail the policy.
const FIELDS: Record<string, string[]> = {
  chat: ['model', 'messages', 'stream', 'format', 'keep_alive', 'options', 'think', 'tools'],
  generate: ['model', 'prompt', 'system', 'stream', 'raw', 'keep_alive', 'options', 'images'],
  embed: ['model', 'input', 'keep_alive', 'truncate', 'dimensions', 'options'],
  embeddings: ['model', 'prompt', 'keep_alive', 'options'],
  show: ['model', 'name', 'verbose', 'options', 'system'],
  pull: ['model', 'name', 'stream', 'insecure', 'username'],
  openai_chat: ['model', 'messages', 'stream', 'stream_options', 'max_tokens', 'temperature', 'seed', 'stop'],
  openai_completion: ['model', 'prompt', 'stream', 'stream_options', 'max_tokens', 'suffix', 'seed'],
  openai_embed: ['model', 'input', 'dimensions', 'encoding_format'],
}

const value = (field: string): fc.Arbitrary<unknown> => {
  switch (field) {
    case 'model':
    case 'name':
      return fc.constantFrom('qwen3:1.7b', 'hermes3:8b', 'smollm2:135m', 'Qwen3:1.7B', '')
    case 'stream':
    case 'raw':
    case 'verbose':
    case 'truncate':
    case 'insecure':
      return fc.boolean()
    case 'keep_alive':
      return fc.constantFrom(-1, '5m', 30, '24h', 0, null)
    case 'messages':
      return fc.constant([{ role: 'user', content: 'hi' }])
    case 'options':
      return fc.oneof(
        fc.constant(null),
        fc.dictionary(
          fc.constantFrom('num_ctx', 'temperature', 'num_predict', 'NUM_CTX', 'top_k', 'seed', 'num_gpu'),
          fc.integer({ min: 0, max: 70_000 }),
          { maxKeys: 4 },
        ),
      )
    case 'max_tokens':
    case 'dimensions':
    case 'seed':
      return fc.integer({ min: -2, max: 100_000 })
    case 'stream_options':
      return fc.record({ include_usage: fc.boolean() })
    default:
      return fc.constantFrom('x', 'a b', 1, true, ['x'], { k: 1 })
  }
}

/** The key as sent: exact, or a case variant Go would still match (K and ſ included). */
const spelling = (field: string): fc.Arbitrary<string> =>
  fc.oneof(
    { weight: 6, arbitrary: fc.constant(field) },
    { weight: 1, arbitrary: fc.constant(field.toUpperCase()) },
    { weight: 1, arbitrary: fc.constant(field.charAt(0).toUpperCase() + field.slice(1)) },
    {
      weight: 1,
      arbitrary: fc.constant(field.replace(/k/g, '\u212A').replace(/s/g, '\u017F')),
    },
    {
      weight: 1,
      arbitrary: fc
        .array(fc.boolean(), { minLength: field.length, maxLength: field.length })
        .map((flags) => [...field].map((c, i) => (flags[i] ? c.toUpperCase() : c)).join('')),
    },
  )

/** A raw JSON object text with the given pairs in order (duplicates kept: JS objects cannot hold them). */
const rawObject = (pairs: [string, unknown][]) =>
  `{${pairs.map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)}`).join(',')}}`

const bodyFor = (shape: string): fc.Arbitrary<[string, unknown][]> =>
  fc
    .array(
      fc.oneof(
        { weight: 8, arbitrary: fc.constantFrom(...(FIELDS[shape] as string[])) },
        { weight: 1, arbitrary: fc.constantFrom('foo', 'Foo', 'modelx', '_debug') },
      ),
      { minLength: 1, maxLength: 9 },
    )
    .chain((fields) =>
      fc.tuple(...fields.map((f) => fc.tuple(spelling(f), value(f)))).map((pairs) => [
        // Most bodies name a model exactly, so many get past the policy and are forwarded.
        ['model', 'qwen3:1.7b'] as [string, unknown],
        ...pairs,
      ]),
    )

describe.skipIf(!haveGo)('forwarded bodies as Go’s encoding/json reads them', () => {
  let h: GatewayHarness
  let upstream: MockUpstream
  let key: string
  const received: { path: string; ua: string; body: string }[] = []
  const admitted: Admission[] = []

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sllm-go-json-'))
    decoder = join(dir, 'decode')
    execFileSync(
      'go',
      ['build', '-o', decoder, fileURLToPath(new URL('./go-decode/main.go', import.meta.url))],
      {
        env: { ...process.env, GOCACHE: join(dir, 'cache'), GOPATH: join(dir, 'gopath'), GO111MODULE: 'off' },
        stdio: 'pipe',
      },
    )
    const tags = readFileSync(join(fakeOllamaDir, 'fixtures', 'api-tags-16-models-local.json'), 'utf8')
    const show = readFileSync(
      join(fakeOllamaDir, 'fixtures', 'api-show-dolphin3-8b-local-windows.json'),
      'utf8',
    )
    upstream = await startMockUpstream((req, res) => {
      const parts: Buffer[] = []
      req.on('data', (c: Buffer) => parts.push(c))
      req.on('end', () => {
        const body = Buffer.concat(parts).toString('utf8')
        received.push({ path: req.url ?? '', ua: String(req.headers['user-agent'] ?? ''), body })
        if (req.url === '/api/tags')
          return void res.writeHead(200, { 'content-type': 'application/json' }).end(tags)
        if (req.url === '/api/show')
          return void res.writeHead(200, { 'content-type': 'application/json' }).end(show)
        if (req.url === '/api/ps')
          return void res.writeHead(200, { 'content-type': 'application/json' }).end('{"models":[]}')
        if (req.url === '/api/pull') {
          return void res
            .writeHead(200, { 'content-type': 'application/x-ndjson' })
            .end('{"status":"success"}\n')
        }
        res.writeHead(200, { 'content-type': 'application/json' }).end('{"done":true}')
      })
    })
    h = await startGateway({ fake: false, upstream: upstream.url })
    const roleId = await h.role({
      name: 'go-json',
      max_memory_mb: 65536,
      max_concurrent: 10,
      can_pull: true,
      max_keep_alive_s: 600,
      max_context_tokens: 8192,
      max_predict_tokens: 4096,
    })
    ;({ key } = await h.device('go-json', roleId))
    // Every admission the gateway makes, as the policy returned it.
    const admit = h.hub.policy.admit.bind(h.hub.policy)
    h.hub.policy.admit = async (...args: Parameters<typeof admit>) => {
      const a = await admit(...args)
      admitted.push(a)
      return a
    }
  })
  afterAll(async () => {
    await h?.close()
    await upstream?.close()
    if (dir) rmSync(dir, { recursive: true, force: true })
  })

  it('decodes every forwarded body to exactly what was admitted, over case variants and duplicate keys on every route', async () => {
    const routes = [...GATEWAY_ROUTES.entries()].filter(([, r]) => r.body)
    const checks: { shape: string; sent: string; original: string; admission: Admission }[] = []
    let refusedFolded = 0
    await fc.assert(
      fc.asyncProperty(
        fc
          .constantFrom(...routes)
          .chain(([path, route]) =>
            bodyFor(route.body as string).map((pairs) => ({ path, shape: route.body as string, pairs })),
          ),
        async ({ path, shape, pairs }) => {
          received.length = 0
          admitted.length = 0
          const original = rawObject(pairs)
          const res = await post(`${h.url}${path}`, key, original)
          const [fromClient] = goDecode([{ shape, body: original }])
          // A key Go would fold onto a field it reads, spelled otherwise: refused, nothing forwarded.
          const fields = FIELDS[shape] as string[]
          const forwarded = received.filter((r) =>
            shape === 'pull' ? r.path === '/api/pull' : r.ua === TEST_UA,
          )
          if (forwardsFoldedField(shape, pairs, fields)) {
            expect(res.status, `${path} ${original}`).toBe(400)
            expect(forwarded).toEqual([])
            refusedFolded++
            return
          }
          if (res.status !== 200) {
            expect(res.status, `${path} ${original} → ${res.text}`).toBeLessThan(500)
            expect(forwarded).toEqual([])
            return
          }
          expect(forwarded, original).toHaveLength(1)
          expect(admitted).toHaveLength(1)
          const admission = admitted[0] as Admission
          // The model Go reads from the client's own body is the model that was checked.
          const goModel =
            typeof fromClient?.model === 'string' && fromClient.model !== ''
              ? fromClient.model
              : fromClient?.name
          expect(normaliseModelName(String(goModel)), original).toBe(
            normaliseModelName(admission.model as string),
          )
          checks.push({ shape, sent: (forwarded[0] as { body: string }).body, original, admission })
        },
      ),
      { numRuns: 400 },
    )
    // The forwarded bytes, decoded by Go into Ollama's struct, hold exactly the admitted fields and values.
    const decoded = goDecode(checks.map((c) => ({ shape: c.shape, body: c.sent })))
    for (const [i, c] of checks.entries()) {
      const expected =
        c.shape === 'pull' ? { model: c.admission.model, stream: true } : withoutNulls(c.admission.outgoing)
      expect(withoutNulls(decoded[i] as Decoded), `${c.shape} ${c.original}`).toEqual(expected)
    }
    // Not vacuous: many bodies were forwarded and many were refused for a folded key.
    expect(checks.length).toBeGreaterThan(80)
    expect(refusedFolded).toBeGreaterThan(40)
  }, 120_000)
})

/** Whether a folded key lands on a field the gateway forwards for this route (those are refused). */
function forwardsFoldedField(shape: string, pairs: [string, unknown][], fields: string[]): boolean {
  const forwardedFields: Record<string, string[]> = {
    show: ['model', 'verbose', 'name'],
    pull: ['model', 'stream', 'name'],
  }
  const fwd = forwardedFields[shape] ?? fields
  const fold = (k: string) =>
    k
      .replace(/\u212A/g, 'k')
      .replace(/\u017F/g, 's')
      .toLowerCase()
  return pairs.some(([k]) => !fields.includes(k) && fwd.includes(fold(k)))
}

import { type FakeOllama, startFakeOllama } from '@sharedllm/core/testing'
import request from 'supertest'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { listen, type RunningServer } from '../src/listen'
import { ADMIN, type Harness, setup } from './helpers'

// The real model manager against the fake `ollama serve` (a real child process replaying captured replies).
let fake: FakeOllama
let h: Harness
beforeAll(async () => {
  fake = await startFakeOllama({ chunkDelayMs: 40, pullSteps: 6 })
})
afterAll(() => fake?.stop())
afterEach(() => h?.cleanup())

async function start() {
  h = await setup({
    hub: { ollama: true, settings: { ollama_host: fake.url, auto_start_ollama: false } },
  })
}

function ndjson(text: string): Array<Record<string, unknown>> {
  return text
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l))
}

describe('models API (against the fake Ollama process)', () => {
  it('lists models with fits, running models, status; pulls with NDJSON progress; deletes', async () => {
    await start()
    const status = await request(h.app).get('/api/ollama/status').set(ADMIN).expect(200)
    expect(status.body).toMatchObject({ running: true, owned: false })
    const models = await request(h.app).get('/api/models').set(ADMIN).expect(200)
    expect(models.body.models.length).toBeGreaterThan(0)
    expect(models.body.models[0].fits.map((f: { role_id: string }) => f.role_id)).toContain('role-guest')
    const running = await request(h.app).get('/api/models/running').set(ADMIN).expect(200)
    expect(Array.isArray(running.body.models)).toBe(true)

    const pull = await request(h.app)
      .post('/api/models/pull')
      .set(ADMIN)
      .send({ name: 'tinyllama:1.1b' })
      .expect(200)
    expect(pull.headers['content-type']).toMatch(/application\/x-ndjson/)
    const lines = ndjson(pull.text)
    expect(lines.length).toBeGreaterThan(2)
    expect(lines.at(-1)).toEqual({ name: 'tinyllama:1.1b', status: 'success' })
    expect(lines.some((l) => typeof l.percent === 'number')).toBe(true)
    const after = await request(h.app).get('/api/models').set(ADMIN)
    expect(after.body.models.map((m: { name: string }) => m.name)).toContain('tinyllama:1.1b')
    await request(h.app).delete('/api/models/tinyllama%3A1.1b').set(ADMIN).expect(204)
    await request(h.app).delete('/api/models/tinyllama%3A1.1b').set(ADMIN).expect(404)
  })

  it('reports an error line inside the 200 stream, validates names, and 404s unknown cancels', async () => {
    await start()
    const failed = await request(h.app)
      .post('/api/models/pull')
      .set(ADMIN)
      .send({ name: 'will-error' })
      .expect(200)
    expect(ndjson(failed.text).at(-1)).toMatchObject({ name: 'will-error', error: expect.any(String) })
    const bad = await request(h.app)
      .post('/api/models/pull')
      .set(ADMIN)
      .send({ name: '../etc/passwd' })
      .expect(400)
    expect(bad.body.code).toBe('VALIDATION')
    await request(h.app).post('/api/models/pull').set(ADMIN).send({ model: 'x' }).expect(400)
    await request(h.app).delete('/api/models/pull/nothing-here').set(ADMIN).expect(404)
    await request(h.app).delete('/api/models/..%2Fx').set(ADMIN).expect(400)
  })

  it('cancels a pull in progress', async () => {
    await start()
    const pulling = request(h.app).post('/api/models/pull').set(ADMIN).send({ name: 'slowpoke:7b' })
    const done = pulling.then((r) => r)
    for (let i = 0; i < 50 && h.hub.models.activePulls().length === 0; i++)
      await new Promise((r) => setTimeout(r, 20))
    const pulls = await request(h.app).get('/api/models/pulls').set(ADMIN).expect(200)
    expect(pulls.body.pulls.map((p: { name: string }) => p.name)).toContain('slowpoke:7b')
    await request(h.app).delete('/api/models/pull/slowpoke%3A7b').set(ADMIN).expect(204)
    const res = await done
    expect(ndjson(res.text).at(-1)).toMatchObject({ error: expect.any(String) })
  })
})

describe('graceful shutdown', () => {
  let srv: RunningServer | undefined
  afterEach(() => srv?.close())

  it('stops accepting but lets an open pull stream finish', async () => {
    await start()
    srv = await listen(h.hub, { port: 0, host: '127.0.0.1', pwaDir: h.pwaDir, drainMs: 10_000 })
    const base = `http://127.0.0.1:${srv.port}`
    const res = await fetch(`${base}/api/models/pull`, {
      method: 'POST',
      headers: { ...ADMIN, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'drain-test:1b' }),
    })
    expect(res.status).toBe(200)
    const reader = res.body!.getReader()
    await reader.read() // the stream is open and flowing
    const closing = srv.close()
    // New connections are refused while the stream drains.
    await expect(fetch(`${base}/healthz`)).rejects.toThrow()
    let text = ''
    for (;;) {
      const { value, done } = await reader.read()
      if (done) break
      text += Buffer.from(value).toString()
    }
    await closing
    expect(text.trim().split('\n').at(-1)).toBe(JSON.stringify({ name: 'drain-test:1b', status: 'success' }))
  })
})

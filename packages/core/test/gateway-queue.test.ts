import { type ClientRequest, request } from 'node:http'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { type EventMap, QUEUE_WAIT_BOUNDS_MS } from '../src/index'
import { ADMIN_SECRET, type GatewayHarness, get, post, startGateway, TEST_UA } from './gateway-harness'

// The fair-share queue through the gateway, against the stand-in Ollama as a real process. The hub is
// attached to it (not its owner), so the `ollama_num_parallel` setting (1, Ollama's default) is the capacity.
const MODEL = 'qwen3:1.7b'
const CHUNKS = 10
const CHAT = (text = 'hi', extra: Record<string, unknown> = {}) => ({
  model: MODEL,
  messages: [{ role: 'user', content: text }],
  stream: true,
  ...extra,
})

interface Streamed {
  req: ClientRequest
  /** When the response headers came (Ollama started answering). */
  started: Promise<number>
  done: Promise<{ status: number; text: string; headers: Record<string, unknown>; error?: Error }>
}

function stream(url: string, key: string, body: unknown, extra: Record<string, string> = {}): Streamed {
  let onStart!: (t: number) => void
  const started = new Promise<number>((r) => {
    onStart = r
  })
  let req!: ClientRequest
  const done = new Promise<{ status: number; text: string; headers: Record<string, unknown>; error?: Error }>(
    (resolve) => {
      req = request(url, {
        method: 'POST',
        headers: {
          Authorization: `Bearer ${key}`,
          'content-type': 'application/json',
          'user-agent': TEST_UA,
          ...extra,
        },
      })
      req.on('response', (res) => {
        onStart(performance.now())
        let text = ''
        res.setEncoding('utf8')
        res.on('data', (c: string) => {
          text += c
        })
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text, headers: res.headers }))
        res.on('error', (error) =>
          resolve({ status: res.statusCode ?? 0, text, headers: res.headers, error }),
        )
      })
      req.on('error', (error) => resolve({ status: 0, text: '', headers: {}, error }))
      req.end(JSON.stringify(body))
    },
  )
  return { req, started, done }
}

const CHAT_URL = (h: GatewayHarness) => `${h.url}/ollama/api/chat`

describe('the fair-share queue in the gateway', () => {
  let h: GatewayHarness

  beforeAll(async () => {
    // Each answer: 10 chunks 30 ms apart (~300 ms of service), one at a time.
    h = await startGateway({ fake: { chunks: CHUNKS, chunkDelayMs: 30 } })
  })
  afterAll(() => h.close())

  const snapshot = () => h.hub.queue.scheduler.snapshot()
  const waitingOf = (deviceId: string) =>
    snapshot().devices.find((d) => d.device_id === deviceId)?.waiting ?? 0
  const runningOf = (deviceId: string) =>
    snapshot().devices.find((d) => d.device_id === deviceId)?.running ?? 0

  it('a guest flooding 20 requests delays the owner by at most the one already running; one at a time', async () => {
    const roleId = await h.role({
      name: 'flooder',
      max_memory_mb: 8192,
      share_weight: 1,
      max_concurrent: 1,
      max_queued: 30,
      max_wait_s: 600,
    })
    const { key, deviceId } = await h.device('flooding-guest', roleId)
    let maxRunning = 0
    const off = h.hub.on('queue_position', () => {
      maxRunning = Math.max(maxRunning, snapshot().running.length)
    })
    const guest = Array.from({ length: 20 }, () => stream(CHAT_URL(h), key, CHAT('flood flood flood')))
    await vi.waitFor(() => expect(waitingOf(deviceId)).toBe(19), { timeout: 10_000 })
    // The guest's first request is streaming (Ollama answered; a first load can take a while): its counter
    // grows with each chunk.
    await Promise.race(guest.map((g) => g.started))
    await vi.waitFor(() =>
      expect(snapshot().devices.find((d) => d.device_id === deviceId)?.vtc_counter).toBeGreaterThan(0),
    )
    const asked = performance.now()
    const owner = stream(CHAT_URL(h), ADMIN_SECRET, CHAT('owner here'))
    const ownerStart = await owner.started
    const guestStarts = await Promise.all(
      guest.map((g) =>
        Promise.race([g.started, new Promise<number>((r) => setTimeout(() => r(Infinity), 30_000))]),
      ),
    )
    // No guest request started between the owner's arrival and the owner's start: it waited only for the
    // one that was running (less than one service time).
    expect(guestStarts.filter((t) => t > asked && t < ownerStart)).toEqual([])
    const results = await Promise.all([...guest.map((g) => g.done), owner.done])
    off()
    expect(results.map((r) => r.status)).toEqual(Array(21).fill(200))
    for (const r of results) expect(r.text.trim().split('\n')).toHaveLength(CHUNKS + 1)
    expect(maxRunning).toBeLessThanOrEqual(1)
    // The owner's place was released, and the counters followed Ollama's exact counts.
    expect(snapshot().running).toEqual([])
    expect(h.hub.queue.scheduler.served(deviceId)).toBeGreaterThan(20 * CHUNKS)
  }, 60_000)

  it('waiting devices hear their own queue_position; a cancelled waiting request frees its place', async () => {
    const roleId = await h.role({ name: 'one-waits', max_memory_mb: 8192, max_concurrent: 1, max_queued: 1 })
    const { key, deviceId } = await h.device('one-waits', roleId)
    const positions: Array<EventMap['queue_position']> = []
    const off = h.hub.on('queue_position', (p) => {
      if (p.device_id === deviceId) positions.push(p)
    })
    await h.fake?.clearRequests()
    const a = stream(CHAT_URL(h), key, CHAT('first'))
    await vi.waitFor(() => expect(runningOf(deviceId)).toBe(1))
    // The client names its request (X-Request-Id), so it can tell which of its requests waits.
    const b = stream(CHAT_URL(h), key, CHAT('second waits'), { 'x-request-id': 'pwa-chat-0001' })
    await vi.waitFor(() => expect(waitingOf(deviceId)).toBe(1))
    await vi.waitFor(() => expect(positions.length).toBeGreaterThan(0))
    expect(positions[0]).toMatchObject({ device_id: deviceId, request_id: 'pwa-chat-0001', position: 1 })
    // The waiting room is full: 429 with Retry-After naming max_queued, and Ollama never hears of it.
    const c = await post(CHAT_URL(h), key, CHAT('third', { stream: false }))
    expect(c.status).toBe(429)
    expect(Number(c.headers.get('retry-after'))).toBeGreaterThanOrEqual(1)
    expect(c.json().error).toMatch(/max_queued/)
    // The client of the waiting one goes away: its place is free at once.
    b.req.destroy()
    await vi.waitFor(() => expect(waitingOf(deviceId)).toBe(0))
    const d = stream(CHAT_URL(h), key, CHAT('fourth takes the place'))
    await vi.waitFor(() => expect(waitingOf(deviceId)).toBe(1))
    expect((await a.done).status).toBe(200)
    expect((await d.done).status).toBe(200)
    off()
    const sent = (await h.fake!.requests()).filter(
      (r) => r.path === '/api/chat' && r.headers['user-agent'] === TEST_UA,
    )
    const texts = sent.map((r) => JSON.stringify(r.body))
    expect(texts.some((t) => t.includes('second waits'))).toBe(false)
    expect(texts.some((t) => t.includes('third'))).toBe(false)
    expect(sent).toHaveLength(2)
    expect(h.hub.policy.activeStreams(deviceId)).toBe(0)
  }, 30_000)

  it('revoking a device drops its queued requests at once (401), before the running one would end', async () => {
    const roleId = await h.role({
      name: 'revoked-queue',
      max_memory_mb: 8192,
      max_concurrent: 1,
      max_queued: 5,
    })
    const { key, deviceId } = await h.device('revoked-queue', roleId)
    const a = stream(CHAT_URL(h), key, CHAT('running'))
    await vi.waitFor(() => expect(runningOf(deviceId)).toBe(1))
    const waiting = [stream(CHAT_URL(h), key, CHAT('w1')), stream(CHAT_URL(h), key, CHAT('w2'))]
    await vi.waitFor(() => expect(waitingOf(deviceId)).toBe(2))
    const t0 = performance.now()
    await h.hub.devices.revoke(deviceId)
    const answers = await Promise.all(waiting.map((w) => w.done))
    expect(performance.now() - t0).toBeLessThan(250)
    for (const w of answers) {
      expect(w.status).toBe(401)
      expect(JSON.parse(w.text).code).toBe('UNAUTHORIZED')
    }
    expect(waitingOf(deviceId)).toBe(0)
    await a.done // cut by the revocation too
    await vi.waitFor(() => expect(runningOf(deviceId)).toBe(0))
  }, 30_000)

  it('a request that waits longer than max_wait_s is a 503 with Retry-After and says why', async () => {
    const roleId = await h.role({
      name: 'impatient',
      max_memory_mb: 8192,
      max_concurrent: 1,
      max_queued: 2,
      max_wait_s: 1,
    })
    const { key, deviceId } = await h.device('impatient', roleId)
    // The owner paused its role: it waits, and past max_wait_s it is told so.
    h.hub.queue.scheduler.pause(roleId)
    const t0 = performance.now()
    const late = await post(CHAT_URL(h), key, CHAT('late', { stream: false }))
    h.hub.queue.scheduler.resume(roleId)
    expect(late.status).toBe(503)
    expect(performance.now() - t0).toBeGreaterThanOrEqual(900)
    expect(Number(late.headers.get('retry-after'))).toBeGreaterThanOrEqual(1)
    expect(late.json().error).toMatch(/waited 1 s in the queue.*max_wait_s.*paused its role/)
    expect(late.json().details.reason).toBe('queue_wait')
    expect(waitingOf(deviceId)).toBe(0)
    expect(h.hub.policy.activeStreams(deviceId)).toBe(0)
    // Its whole wait is in the usage charts: an error, queued, in the (500 ms, 1 s] bucket of the histogram.
    await h.hub.recorder.flush()
    const view = await h.hub.usage.series({ group: 'device', bucket: 'hour' }, deviceId)
    const i = view.queue_wait.queued.findIndex((n) => n > 0)
    expect(view.series[0]?.errors[i]).toBe(1)
    expect(view.queue_wait.p95_ms[i]).toBeGreaterThan(500)
    expect(view.queue_wait.p95_ms[i]).toBeLessThanOrEqual(1000)
  }, 30_000)

  it('the owner pauses a role (its requests wait), resumes it, and reclaims the GPU with a clear error', async () => {
    const roleId = await h.role({
      name: 'pausable',
      max_memory_mb: 8192,
      max_concurrent: 1,
      max_queued: 4,
      max_wait_s: 600,
    })
    const { key, deviceId } = await h.device('pausable', roleId)
    h.hub.queue.scheduler.pause(roleId)
    const p = stream(CHAT_URL(h), key, CHAT('paused'))
    await vi.waitFor(() => expect(waitingOf(deviceId)).toBe(1))
    // Another device's request goes past it.
    expect((await post(CHAT_URL(h), ADMIN_SECRET, CHAT('owner', { stream: false }))).status).toBe(200)
    expect(waitingOf(deviceId)).toBe(1)
    h.hub.queue.scheduler.resume(roleId)
    expect((await p.done).status).toBe(200)

    const r = stream(CHAT_URL(h), key, CHAT('to be reclaimed', { options: { num_predict: 100 } }))
    await r.started
    await vi.waitFor(() => expect(runningOf(deviceId)).toBe(1))
    expect(h.hub.queue.scheduler.reclaim()).toHaveLength(1)
    const out = await r.done
    const last = JSON.parse(out.text.trim().split('\n').at(-1) as string)
    expect(last.error).toMatch(/took the GPU back/)
    await vi.waitFor(() => expect(runningOf(deviceId)).toBe(0))

    // The OpenAI stream ends with an error event, as OpenAI clients read one.
    const v1 = stream(`${h.url}/v1/chat/completions`, key, CHAT('reclaimed too'))
    await v1.started
    await vi.waitFor(() => expect(runningOf(deviceId)).toBe(1))
    expect(h.hub.queue.scheduler.reclaim()).toHaveLength(1)
    const events = (await v1.done).text.trim().split('\n\n')
    const error = JSON.parse((events.at(-1) as string).replace(/^data: /, ''))
    expect(error.error).toMatchObject({
      code: 'UPSTREAM_UNAVAILABLE',
      message: expect.stringMatching(/took the GPU back/),
    })
  }, 30_000)
})

describe('max_concurrent keeps its meaning when Ollama has room (OLLAMA_NUM_PARALLEL 4)', () => {
  let h: GatewayHarness

  beforeAll(async () => {
    h = await startGateway({
      fake: { chunks: CHUNKS, chunkDelayMs: 30 },
      hub: { settings: { ollama_num_parallel: 4 } },
    })
  })
  afterAll(() => h.close())

  it('a device runs at most max_concurrent at once; the rest wait (not refused) while others run beside', async () => {
    const roleId = await h.role({
      name: 'one-at-a-time',
      max_memory_mb: 8192,
      max_concurrent: 1,
      max_queued: 2,
    })
    const { key, deviceId } = await h.device('one-at-a-time', roleId)
    const mine = [stream(CHAT_URL(h), key, CHAT('one')), stream(CHAT_URL(h), key, CHAT('two'))]
    const snap = () => h.hub.queue.scheduler.snapshot().devices.find((d) => d.device_id === deviceId)
    await vi.waitFor(() => expect(snap()).toMatchObject({ running: 1, waiting: 1 }))
    // The owner's requests run beside it: Ollama has three more slots.
    const owner = await Promise.all(
      [1, 2].map(() => post(CHAT_URL(h), ADMIN_SECRET, CHAT('owner', { stream: false }))),
    )
    expect(owner.map((r) => r.status)).toEqual([200, 200])
    const [a, b] = await Promise.all(mine.map((m) => m.done))
    expect([a?.status, b?.status]).toEqual([200, 200])
    // The waiting one started after the running one.
    expect(await mine[1]?.started).toBeGreaterThan(await mine[0]!.started)
  }, 30_000)
})

describe('budgets and hours at admission', () => {
  let h: GatewayHarness

  beforeAll(async () => {
    h = await startGateway({ fake: { chunks: CHUNKS, chunkDelayMs: 5 } })
  })
  afterAll(() => h.close())

  it('a daily budget: the stream that crosses it finishes, the next request is a 429 naming it', async () => {
    const { key, deviceId } = await h.device('budgeted', 'role-user')
    const tokensOf = (text: string) => {
      const last = JSON.parse(text.trim().split('\n').at(-1) as string)
      return (last.prompt_eval_count as number) + (last.eval_count as number)
    }
    const quota: Array<EventMap['quota']> = []
    const notices: Array<EventMap['budget_reached']> = []
    const offs = [h.hub.on('quota', (q) => quota.push(q)), h.hub.on('budget_reached', (n) => notices.push(n))]
    await h.hub.devices.setLimits(deviceId, { token_budget_day: 1_000_000 })
    const first = await post(CHAT_URL(h), key, CHAT())
    expect(first.status).toBe(200)
    // One chat costs n tokens (Ollama's prompt_eval_count + eval_count); a budget of 1.5 n is crossed by the
    // second, which still streams to its end.
    const n = tokensOf(first.text)
    const budget = Math.ceil(1.5 * n)
    await h.hub.devices.setLimits(deviceId, { token_budget_day: budget })
    const crossing = await post(CHAT_URL(h), key, CHAT())
    expect(crossing.status).toBe(200)
    expect(crossing.text.trim().split('\n')).toHaveLength(CHUNKS + 1)
    expect(JSON.parse(crossing.text.trim().split('\n').at(-1) as string).done).toBe(true)
    // No flush needed: the recorder's buffered tokens count at once.
    const refused = await post(CHAT_URL(h), key, CHAT())
    expect(refused.status).toBe(429)
    expect(refused.json().error).toMatch(
      new RegExp(`daily token budget \\(${budget} tokens\\) is used up; it resets`),
    )
    expect(refused.json().details).toMatchObject({ reason: 'token_budget', window: 'day', used: 2 * n })
    const retry = Number(refused.headers.get('retry-after'))
    const limits = await h.hub.usage.limits(
      await h.hub.devices.get(deviceId),
      await h.hub.roles.get('role-user'),
    )
    const day = limits.quota.find((q) => q.window === 'day')!
    expect(day).toMatchObject({ budget, used: 2 * n, remaining: 0 })
    expect(Math.abs(retry - (day.resets_at - Date.now()) / 1000)).toBeLessThan(5)
    await vi.waitFor(() => expect(quota.map((q) => q.threshold)).toEqual([80, 100]))
    expect(quota[0]).toMatchObject({ device_id: deviceId, window: 'day', budget })
    expect(notices).toHaveLength(1)
    expect(notices[0]).toMatchObject({
      device_id: deviceId,
      device_name: 'budgeted',
      threshold: 100,
      time_zone: h.hub.usage.zone,
    })
    for (const off of offs) off()
    // The edge: a budget equal to what was used refuses; one token more admits.
    await h.hub.devices.setLimits(deviceId, { token_budget_day: 2 * n })
    expect((await post(CHAT_URL(h), key, CHAT())).status).toBe(429)
    await h.hub.devices.setLimits(deviceId, { token_budget_day: 2 * n + 1 })
    expect((await post(CHAT_URL(h), key, CHAT())).status).toBe(200)
    // Lists are not inference: still answered.
    expect((await get(`${h.url}/ollama/api/tags`, key)).status).toBe(200)
    // The two refusals are in the usage series as requests and errors (their model was never read), and
    // wrote no raw row: five requests, three served.
    await h.hub.recorder.flush()
    const view = await h.hub.usage.series({ group: 'model', bucket: 'day' }, deviceId)
    const total = (k: 'requests' | 'errors') =>
      view.series.reduce((a, x) => a + x[k].reduce((b, y) => b + y, 0), 0)
    expect([total('requests'), total('errors')]).toEqual([5, 2])
    expect(view.series.find((x) => x.key === '')?.errors.reduce((a, b) => a + b, 0)).toBe(2)
    expect(await h.hub.db('usage').where({ device_id: deviceId }).count({ n: '*' })).toEqual([{ n: 3 }])
    expect(view.queue_wait.queued.reduce((a, b) => a + b, 0)).toBe(3)
  })

  it('six at once against a budget: each is checked again at its turn, so only those that start under it run', async () => {
    const roleId = await h.role({
      name: 'patient-budgeted',
      max_memory_mb: 8192,
      max_concurrent: 1,
      max_queued: 8,
      max_wait_s: 600,
    })
    const { key, deviceId } = await h.device('six-at-once', roleId)
    await h.hub.devices.setLimits(deviceId, { token_budget_day: 1_000_000 })
    const first = await post(CHAT_URL(h), key, CHAT())
    const last = JSON.parse(first.text.trim().split('\n').at(-1) as string)
    const n = (last.prompt_eval_count as number) + (last.eval_count as number)
    // Room for two more chats, not for six: the second of them crosses the budget and finishes.
    await h.hub.devices.setLimits(deviceId, { token_budget_day: n + Math.ceil(1.5 * n) })
    const answers = await Promise.all(Array.from({ length: 6 }, () => post(CHAT_URL(h), key, CHAT())))
    const statuses = answers.map((a) => a.status).sort()
    expect(statuses).toEqual([200, 200, 429, 429, 429, 429])
    for (const a of answers.filter((x) => x.status === 429))
      expect(a.json().error).toMatch(/daily token budget .* is used up/)
  })

  it('outside the allowed hours: 403 naming the next opening, Retry-After until then; one more hour opens it', async () => {
    const { key, deviceId } = await h.device('after-school', 'role-user')
    const { hoursStatus, wallTime } = await import('../src/index')
    const zone = h.hub.usage.zone
    const today = wallTime(Date.now(), zone).weekday
    const schedule = [{ days: [(today + 2) % 7], from: '16:00', to: '20:00' }]
    await h.hub.devices.setLimits(deviceId, { allowed_hours: schedule })
    const closed = await post(CHAT_URL(h), key, CHAT())
    expect(closed.status).toBe(403)
    const expected = hoursStatus(schedule, Date.now(), zone)
    expect(expected.open).toBe(false)
    expect(closed.json().error).toMatch(/outside this device's allowed hours; it opens/)
    expect(closed.json().details.reason).toBe('allowed_hours')
    const retry = Number(closed.headers.get('retry-after'))
    expect(Math.abs(retry - ((expected.next_open as number) - Date.now()) / 1000)).toBeLessThan(5)
    const limits = await h.hub.usage.limits(
      await h.hub.devices.get(deviceId),
      await h.hub.roles.get('role-user'),
    )
    expect(limits.hours).toMatchObject({ open: false, next_open: expected.next_open })
    await h.hub.usage.grantOneMoreHour(deviceId, schedule, 'admin')
    expect((await post(CHAT_URL(h), key, CHAT())).status).toBe(200)
  })

  it('refusals with names the caller made up (50 in parallel) add one rollup row and no metrics series', async () => {
    const { key, deviceId } = await h.device('makes-up-names', 'role-user')
    const names = Array.from({ length: 50 }, (_, i) => `made-up-${i}:latest`)
    const answers = await Promise.all(names.map((m) => post(CHAT_URL(h), key, { ...CHAT(), model: m })))
    expect(new Set(answers.map((a) => a.status))).toEqual(new Set([404]))
    // The totals a device sees (raw rows) do not count them, before the batch is written or after.
    expect((await h.hub.usage.totals(deviceId)).requests).toBe(0)
    await h.hub.recorder.flush()
    expect((await h.hub.usage.totals(deviceId)).requests).toBe(0)
    const rows = await h.hub.db('usage_hourly').where({ device_id: deviceId })
    expect(rows.map((r) => [r.model, r.requests, r.errors])).toEqual([['', 50, 50]])
    expect(await h.hub.db('usage').where({ device_id: deviceId })).toHaveLength(0)
    const metrics = await get(`${h.url}/metrics`, ADMIN_SECRET)
    expect(metrics.text).not.toContain('made-up-')
  })

  it('the wait a request spent in the queue reaches the usage series as p50/p95', async () => {
    const { key, deviceId } = await h.device('waits-its-turn', 'role-user')
    const other = await h.device('goes-first', 'role-user')
    const first = stream(CHAT_URL(h), other.key, CHAT('first'))
    await first.started
    // One slot (num_parallel 1): this one waits for the first answer (10 chunks 5 ms apart) to end.
    const second = stream(CHAT_URL(h), key, CHAT('second'))
    expect((await Promise.all([first.done, second.done])).map((r) => r.status)).toEqual([200, 200])
    await h.hub.recorder.flush()
    const view = await h.hub.usage.series({ group: 'device', bucket: 'hour' }, deviceId)
    const i = view.queue_wait.queued.findIndex((n) => n > 0)
    expect(view.queue_wait.queued[i]).toBe(1)
    // Its one wait, as the rollup's sum holds it exactly: it waited for the first answer, and the p50 and
    // p95 read from the histogram lie in that wait's bucket.
    const row = (await h.hub.db('usage_hourly').where({ device_id: deviceId }).first('queue_wait_ms')) as {
      queue_wait_ms: number
    }
    const waited = row.queue_wait_ms
    expect(waited).toBeGreaterThan(10)
    const b = QUEUE_WAIT_BOUNDS_MS.findIndex((x) => waited <= x)
    for (const p of [view.queue_wait.p50_ms[i], view.queue_wait.p95_ms[i]]) {
      expect(p).toBeGreaterThan(QUEUE_WAIT_BOUNDS_MS[b - 1] ?? 0)
      expect(p).toBeLessThanOrEqual(QUEUE_WAIT_BOUNDS_MS[b] ?? 0)
    }
    expect(view.series[0]?.queue_wait_p50_ms[i]).toBe(view.queue_wait.p50_ms[i])
  })

  it('usage goes through the batch recorder into the usage table and rollups; /metrics has each family once', async () => {
    const { key, deviceId } = await h.device('metered', 'role-user')
    const seen: Array<EventMap['usage']> = []
    const off = h.hub.on('usage', (u) => seen.push(u))
    expect((await post(CHAT_URL(h), key, CHAT('count me', { stream: false }))).status).toBe(200)
    off()
    expect(seen).toHaveLength(1)
    expect(seen[0]).toMatchObject({
      device_id: deviceId,
      model: MODEL,
      status: 200,
      completion_tokens: CHUNKS,
    })
    const used = (seen[0]?.prompt_tokens as number) + CHUNKS
    expect(seen[0]?.prompt_tokens).toBeGreaterThan(0)
    await h.hub.recorder.flush()
    const rows = await h.hub.db('usage').where({ device_id: deviceId })
    expect(rows).toHaveLength(1)
    const hourly = await h.hub.db('usage_hourly').where({ device_id: deviceId })
    expect(hourly).toHaveLength(1)
    expect(hourly[0]).toMatchObject({
      requests: 1,
      prompt_tokens: seen[0]?.prompt_tokens,
      completion_tokens: CHUNKS,
    })
    await h.hub.devices.setLimits(deviceId, { token_budget_week: 1000 })
    const metrics = await get(`${h.url}/metrics`, ADMIN_SECRET)
    expect(metrics.status).toBe(200)
    const families = metrics.text
      .split('\n')
      .filter((l) => l.startsWith('# TYPE '))
      .map((l) => l.split(' ')[2])
    expect(new Set(families).size).toBe(families.length)
    for (const f of [
      'sharedllm_queue_depth',
      'sharedllm_vtc_counter',
      'sharedllm_queue_wait_seconds',
      'sharedllm_tokens_total',
      'sharedllm_usage_tokens',
      'sharedllm_quota_remaining_tokens',
    ])
      expect(families).toContain(f)
    expect(metrics.text).toContain(
      `sharedllm_quota_remaining_tokens{device="${deviceId}",window="week"} ${1000 - used}`,
    )
    expect(metrics.text).toMatch(/sharedllm_queue_wait_seconds_bucket\{le="\+Inf",role="role-user"\} \d+/)
  })
})

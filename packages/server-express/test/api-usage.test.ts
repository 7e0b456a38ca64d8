import { UsageRecorder } from '@sharedllm/core'
import request from 'supertest'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { ADMIN, approvedDevice, type Harness, setup } from './helpers'

let h: Harness
beforeEach(async () => {
  h = await setup()
})
afterEach(() => h.cleanup())

async function seed() {
  const a = await approvedDevice(h.hub, 'anna', 'role-guest')
  const joined = await h.hub.access.join({ name: 'ben' }, '192.168.1.51')
  await h.hub.devices.approve(joined.device_id, 'role-user')
  const b = joined.device_id
  const recorder = new UsageRecorder({ db: () => h.hub.db })
  const at = Date.now() - 2 * 3_600_000
  const base = { endpoint: '/api/chat', duration_ms: 5, status: 200, at }
  recorder.record({
    ...base,
    device_id: a.deviceId,
    model: 'llama3.2:3b',
    prompt_tokens: 10,
    completion_tokens: 20,
  })
  recorder.record({ ...base, device_id: b, model: 'qwen2.5:7b', prompt_tokens: 1, completion_tokens: 2 })
  recorder.record({
    ...base,
    device_id: b,
    model: 'qwen2.5:7b',
    prompt_tokens: 1,
    completion_tokens: 2,
    status: 503,
  })
  await recorder.stop()
  return { a, b }
}

const total = (xs: number[]) => xs.reduce((x, y) => x + y, 0)

describe('usage series and CSV', () => {
  it('the owner sees every device; a device only its own, whatever it asks for', async () => {
    const { a, b } = await seed()
    const all = await request(h.app).get('/api/usage/series?group=device&bucket=hour').set(ADMIN).expect(200)
    // The last 24 hours by default: 25 local hours unless now is on the hour.
    expect(all.body.buckets.length).toBeGreaterThanOrEqual(24)
    expect(all.body.buckets.length).toBeLessThanOrEqual(25)
    expect(
      all.body.series.map((s: { key: string; label: string; requests: number[]; errors: number[] }) => [
        s.label,
        total(s.requests),
        total(s.errors),
      ]),
    ).toEqual([
      ['anna', 1, 0],
      ['ben', 2, 1],
    ])
    const one = await request(h.app)
      .get(`/api/usage/series?group=model&device_id=${b}`)
      .set(ADMIN)
      .expect(200)
    expect(one.body.series.map((s: { key: string }) => s.key)).toEqual(['qwen2.5:7b'])
    const own = await request(h.app)
      .get(`/api/usage/series?group=device&device_id=${b}`)
      .set({ Authorization: `Bearer ${a.key}` })
      .expect(200)
    expect(own.body.series.map((s: { key: string }) => s.key)).toEqual([a.deviceId])
    await request(h.app).get('/api/usage/series').expect(401)
  })

  it('a bad query is a 400 naming the field', async () => {
    for (const [q, message] of [
      ['group=role', /^group: /],
      ['bucket=minute', /^bucket: /],
      ['from=soon', /^from: /],
      ['to=99999999999999999999', /^to: must be a time between 1970 and 9999/],
      ['from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z', /^from: must be before to/],
    ] as Array<[string, RegExp]>) {
      const res = await request(h.app).get(`/api/usage/series?${q}`).set(ADMIN).expect(400)
      expect(res.body.error).toMatch(message)
    }
  })

  it('export.csv answers the same view as CSV', async () => {
    await seed()
    const res = await request(h.app)
      .get('/api/usage/export.csv?group=model&bucket=day')
      .set(ADMIN)
      .expect(200)
    expect(res.headers['content-type']).toMatch(/^text\/csv/)
    expect(res.headers['content-disposition']).toBe('attachment; filename="usage-model-day.csv"')
    const lines = res.text.trimEnd().split('\r\n')
    expect(lines[0]).toBe(
      'bucket_start_utc,bucket_start_local,model,model_label,requests,errors,prompt_tokens,completion_tokens,queue_wait_p50_ms,queue_wait_p95_ms',
    )
    // Recorded without a queue wait (nothing went through the queue): the wait cells are empty.
    expect(lines.slice(1).map((l) => l.split(',').slice(2).join(','))).toEqual([
      'llama3.2:3b,llama3.2:3b,1,0,10,20,,',
      'qwen2.5:7b,qwen2.5:7b,2,1,2,4,,',
    ])
  })
})

describe('one more hour', () => {
  it('grants an approved device an hour past its allowed hours; owner only', async () => {
    const { a } = await seed()
    await request(h.app)
      .patch(`/api/devices/${a.deviceId}/limits`)
      .set(ADMIN)
      .send({ allowed_hours: [] })
      .expect(200)
    const before = Date.now()
    const res = await request(h.app).post(`/api/devices/${a.deviceId}/hours/grant`).set(ADMIN).expect(200)
    expect(res.body.device_id).toBe(a.deviceId)
    expect(res.body.granted_until).toBeGreaterThanOrEqual(before + 3_600_000)
    expect(res.body.granted_until).toBeLessThanOrEqual(Date.now() + 3_600_000)
    const again = await request(h.app).post(`/api/devices/${a.deviceId}/hours/grant`).set(ADMIN).expect(200)
    expect(again.body.granted_until).toBe(res.body.granted_until + 3_600_000)
    await request(h.app)
      .post(`/api/devices/${a.deviceId}/hours/grant`)
      .set({ Authorization: `Bearer ${a.key}` })
      .expect(403)
    await request(h.app).post('/api/devices/nope/hours/grant').set(ADMIN).expect(404)
    const pending = await request(h.app).post('/api/devices').set(ADMIN).send({ name: 'x', ip: '10.0.0.9' })
    await request(h.app).post(`/api/devices/${pending.body.device.id}/hours/grant`).set(ADMIN).expect(409)
  })
})

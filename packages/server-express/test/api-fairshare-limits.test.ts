import request from 'supertest'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { ADMIN, type Harness, setup } from './helpers'

let h: Harness
beforeEach(async () => {
  h = await setup()
})
afterEach(() => h.cleanup())

const schedule = [
  { days: [1, 2, 3, 4, 5], from: '16:00', to: '20:00' },
  { days: [0, 6], from: '09:00', to: '21:00' },
]

describe('roles API: fair-share, quota and hours fields', () => {
  it('round-trips every new field on create, read and update', async () => {
    const body = {
      name: 'kids',
      max_memory_mb: 2048,
      share_weight: 2,
      max_queued: 4,
      max_wait_s: 45,
      allow_cloud: false,
      token_budget_day: 20_000,
      token_budget_week: null,
      token_budget_month: 400_000,
      allowed_hours: schedule,
    }
    const created = await request(h.app).post('/api/permissions/roles').set(ADMIN).send(body).expect(201)
    expect(created.body.role).toMatchObject(body)
    const id = created.body.role.id
    const list = await request(h.app).get('/api/permissions/roles').set(ADMIN).expect(200)
    expect(list.body.roles.find((r: { id: string }) => r.id === id)).toEqual(created.body.role)
    const updated = await request(h.app)
      .put(`/api/permissions/roles/${id}`)
      .set(ADMIN)
      .send({ share_weight: 5, allowed_hours: null, token_budget_week: 90_000 })
      .expect(200)
    expect(updated.body.role).toMatchObject({
      share_weight: 5,
      allowed_hours: null,
      token_budget_week: 90_000,
      token_budget_day: 20_000,
    })
    const guest = list.body.roles.find((r: { id: string }) => r.id === 'role-guest')
    expect(guest).toMatchObject({ share_weight: 1, max_queued: 2, max_wait_s: 60, allow_cloud: false })
  })

  it('answers 400 naming the field for an overlapping schedule, a bad time and a negative budget', async () => {
    const before = await h.hub.roles.list()
    const cases: Array<[object, RegExp]> = [
      [
        { allowed_hours: [...schedule, { days: [6], from: '20:00', to: '22:00' }] },
        /^allowed_hours\.2: overlaps window 1/,
      ],
      [{ allowed_hours: [{ days: [1], from: '7:00', to: '09:00' }] }, /^allowed_hours\.0\.from: /],
      [{ token_budget_day: -100 }, /^token_budget_day: must not be negative/],
      [{ share_weight: 0 }, /^share_weight: /],
    ]
    for (const [patch, message] of cases) {
      const res = await request(h.app)
        .put('/api/permissions/roles/role-user')
        .set(ADMIN)
        .send(patch)
        .expect(400)
      expect(res.body.code).toBe('VALIDATION')
      expect(res.body.error).toMatch(message)
    }
    expect(await h.hub.roles.list()).toEqual(before)
  })
})

describe('PATCH /api/devices/:id/limits', () => {
  it('sets and clears a device override, admin only, and refuses bad bodies naming the field', async () => {
    const added = await request(h.app)
      .post('/api/devices')
      .set(ADMIN)
      .send({ name: 'tablet', ip: '192.168.1.50' })
      .expect(201)
    const id = added.body.device.id
    expect(added.body.device).toMatchObject({ token_budget_day: null, allowed_hours: null })
    await request(h.app).patch(`/api/devices/${id}/limits`).send({ token_budget_day: 1 }).expect(401)
    const set = await request(h.app)
      .patch(`/api/devices/${id}/limits`)
      .set(ADMIN)
      .send({ token_budget_day: 5000, token_budget_month: 50_000, allowed_hours: schedule })
      .expect(200)
    expect(set.body.device).toMatchObject({
      id,
      token_budget_day: 5000,
      token_budget_week: null,
      token_budget_month: 50_000,
      allowed_hours: schedule,
    })
    const before = await h.hub.devices.get(id)
    for (const [body, message] of [
      [{ token_budget_month: -1 }, /^token_budget_month: /],
      [{ allowed_hours: [{ days: [1], from: '10:00', to: '12:60' }] }, /^allowed_hours\.0\.to: /],
      [{ max_queued: 3 }, /unknown field 'max_queued'/],
      [{}, /at least one field/],
    ] as Array<[object, RegExp]>) {
      const res = await request(h.app).patch(`/api/devices/${id}/limits`).set(ADMIN).send(body).expect(400)
      expect(res.body.error).toMatch(message)
    }
    expect(await h.hub.devices.get(id)).toEqual(before)
    await request(h.app)
      .patch('/api/devices/nope/limits')
      .set(ADMIN)
      .send({ token_budget_day: 1 })
      .expect(404)
    const cleared = await request(h.app)
      .patch(`/api/devices/${id}/limits`)
      .set(ADMIN)
      .send({ token_budget_day: null, allowed_hours: null })
      .expect(200)
    expect(cleared.body.device).toMatchObject({ token_budget_day: null, allowed_hours: null })
  })
})

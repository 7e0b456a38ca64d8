import { describe, expect, test, vi } from 'vitest'
import { createHash } from 'node:crypto'
import { DEVICE_KEY_PREFIX, isSharedLLMError, PAIRING_ALPHABET, silentLogger } from '../src/index'
import { recordEvents, startHub, tempDir } from './helpers'

async function codeOf(p: Promise<unknown>): Promise<string | undefined> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  )
  return isSharedLLMError(err) ? err.code : `not a SharedLLMError: ${String(err)}`
}

/** 'ok', or the SharedLLMError code of the refusal. */
const outcome = (p: Promise<unknown>) =>
  p.then(
    () => 'ok',
    (e: unknown) => (isSharedLLMError(e) ? e.code : String(e)),
  )

describe('admin auth', () => {
  test('first start creates a secret once; it is stored only as a hash', async () => {
    const dir = tempDir()
    let hub = await startHub({ dataDir: dir })
    const secret = await hub.admin.ensureSecret()
    expect(secret).toMatch(/^sllm_admin_[A-Za-z0-9_-]{43}$/)
    expect(await hub.admin.ensureSecret()).toBeNull()
    const rows = await hub.db('admin_secret').select()
    expect(JSON.stringify(rows)).not.toContain(secret)
    await hub.stop()
    hub = await startHub({ dataDir: dir })
    expect(await hub.admin.ensureSecret()).toBeNull()
    expect(await hub.admin.verifySecret(secret as string)).toBe(true)
    expect(await hub.admin.verifySecret(`${secret}x`)).toBe(false)
    expect((await hub.access.authenticate(secret))?.kind).toBe('admin')
  })

  test('SHAREDLLM_ADMIN_TOKEN-style secret replaces the stored one and ends sessions', async () => {
    const hub = await startHub()
    const generated = (await hub.admin.ensureSecret()) as string
    const { session } = await hub.admin.login(generated)
    expect(await hub.admin.verifySession(session)).toBe(true)
    expect(await hub.admin.ensureSecret('my-automation-secret-123')).toBeNull()
    expect(await hub.admin.verifySecret('my-automation-secret-123')).toBe(true)
    expect(await hub.admin.verifySecret(generated)).toBe(false)
    expect(await hub.admin.verifySession(session)).toBe(false)
    expect(await codeOf(hub.admin.ensureSecret('short'))).toBe('VALIDATION')
  })

  test('login links work exactly once; reset invalidates sessions', async () => {
    const hub = await startHub()
    const secret = (await hub.admin.ensureSecret()) as string
    const link = await hub.admin.createLoginLink()
    const first = await hub.admin.login(link)
    expect(await hub.admin.verifySession(first.session)).toBe(true)
    expect(await codeOf(hub.admin.login(link))).toBe('UNAUTHORIZED')
    expect(await codeOf(hub.admin.login('wrong'))).toBe('UNAUTHORIZED')
    // A session token is not a credential for a new session.
    expect(await codeOf(hub.admin.login(first.session))).toBe('UNAUTHORIZED')
    const fresh = await hub.admin.resetSecret()
    expect(fresh).not.toBe(secret)
    expect(await hub.admin.verifySession(first.session)).toBe(false)
    expect(await hub.admin.verifySecret(secret)).toBe(false)
  })

  test('expired sessions and links are refused', async () => {
    let now = 1_000_000
    const hub = await startHub({ now: () => now })
    const secret = (await hub.admin.ensureSecret()) as string
    const link = await hub.admin.createLoginLink()
    const { session } = await hub.admin.login(secret)
    now += 8 * 24 * 3600_000
    expect(await hub.admin.verifySession(session)).toBe(false)
    expect(await codeOf(hub.admin.login(link))).toBe('UNAUTHORIZED')
  })
})

describe('admin secret hash and backoff', () => {
  test('the secret is stored with salted scrypt: the same secret twice gives two hashes', async () => {
    const a = await startHub()
    const b = await startHub()
    await a.admin.ensureSecret('the-same-secret-0123456789')
    await b.admin.ensureSecret('the-same-secret-0123456789')
    const ha = (await a.db('admin_secret').first()).secret_hash as string
    const hb = (await b.db('admin_secret').first()).secret_hash as string
    expect(ha).toMatch(/^scrypt\$16384\$8\$1\$[A-Za-z0-9_-]{22}\$[A-Za-z0-9_-]{43}$/)
    expect(ha).not.toBe(hb)
    expect(await a.admin.verifySecret('the-same-secret-0123456789')).toBe(true)
    expect(await a.admin.verifySecret('the-same-secret-012345678')).toBe(false)
  })

  test("an older version's unsalted SHA-256 hash becomes scrypt on the first successful login", async () => {
    const hub = await startHub()
    const secret = 'sllm_admin_legacy-secret-from-round-one'
    await hub
      .db('admin_secret')
      .insert({ secret_hash: createHash('sha256').update(secret).digest('hex'), created_at: 1 })
    expect(await codeOf(hub.admin.login('wrong'))).toBe('UNAUTHORIZED')
    expect((await hub.db('admin_secret').first()).secret_hash).toMatch(/^[0-9a-f]{64}$/)
    const { session } = await hub.admin.login(secret)
    expect((await hub.db('admin_secret').first()).secret_hash).toMatch(/^scrypt\$/)
    expect(await hub.admin.verifySession(session)).toBe(true)
    expect(await hub.admin.verifySecret(secret)).toBe(true)
  })

  test('a known secret (SHAREDLLM_ADMIN_TOKEN) upgrades an old hash at start, keeping sessions', async () => {
    const hub = await startHub()
    const secret = 'automation-secret-0123456789'
    await hub
      .db('admin_secret')
      .insert({ secret_hash: createHash('sha256').update(secret).digest('hex'), created_at: 1 })
    await hub
      .db('admin_sessions')
      .insert({ token_hash: 'ab'.repeat(32), kind: 'session', created_at: 1, expires_at: 9e15 })
    await hub.admin.ensureSecret(secret)
    expect((await hub.db('admin_secret').first()).secret_hash).toMatch(/^scrypt\$/)
    expect(await hub.db('admin_sessions').count({ n: '*' }).first()).toEqual({ n: 1 })
  })

  test('failed admin logins back off per source, logged; other sources and the right secret elsewhere work', async () => {
    const warned: unknown[] = []
    const logger = {
      ...silentLogger,
      warn: (o: unknown) => warned.push(o),
      child: () => logger,
    } as typeof silentLogger
    const hub = await startHub({ logger })
    const secret = (await hub.admin.ensureSecret()) as string
    const tries = await Promise.all(
      Array.from({ length: 5 }, (_, i) => codeOf(hub.admin.login(`guess-${i}`, '10.5.0.1'))),
    )
    expect(tries).toEqual(Array(5).fill('UNAUTHORIZED'))
    expect(await codeOf(hub.admin.login(secret, '10.5.0.1'))).toBe('RATE_LIMITED')
    expect(await codeOf(hub.access.authenticate('guess-bearer', '10.5.0.1'))).toBe('RATE_LIMITED')
    expect((await hub.admin.login(secret, '10.5.0.2')).session).toBeTruthy()
    expect(warned.filter((w) => (w as { source?: string }).source === '10.5.0.1')).toHaveLength(5)
  })

  test('a LAN-wide flood of guesses makes every source but loopback wait', async () => {
    const hub = await startHub({ adminAuth: { backoff: { globalPerMinute: 20 } } })
    const secret = (await hub.admin.ensureSecret()) as string
    const guesses = Array.from({ length: 20 }, (_, i) => codeOf(hub.admin.login('nope', `10.6.${i}.1`)))
    expect(await Promise.all(guesses)).toEqual(Array(20).fill('UNAUTHORIZED'))
    expect(await codeOf(hub.admin.login(secret, '10.6.99.1'))).toBe('RATE_LIMITED')
    expect((await hub.admin.login(secret, '127.0.0.1')).session).toBeTruthy()
    // A revoked device key is not an admin guess: it never adds to the backoff.
    const before = hub.admin.backoff.retryAfter('10.6.200.1')
    for (let i = 0; i < 10; i++) await hub.access.authenticate(`sllm_${'x'.repeat(43)}`, '10.6.200.1')
    expect(hub.admin.backoff.retryAfter('10.6.200.1')).toBe(before)
  })
})

describe('join and claim', () => {
  test('join → pending → approve → claim the key exactly once → authenticate', async () => {
    const hub = await startHub({ capacityMb: () => 50_000 })
    const events = recordEvents(hub)
    const res = await hub.access.join({ name: 'Pixel 8', platform: 'Android' }, '192.168.1.30')
    expect(res).toMatchObject({ status: 'pending' })
    expect(res.claim_secret.length).toBeGreaterThanOrEqual(43)
    expect(events.map((e) => e.type)).toEqual(['device_pending_approval'])
    const device = await hub.devices.get(res.device_id)
    expect(device).toMatchObject({ name: 'Pixel 8', source: 'join', ip: '192.168.1.30', platform: 'Android' })

    expect(await hub.access.claim(res.request_id, res.claim_secret, 'ip')).toEqual({
      status: 'pending',
      device_id: res.device_id,
    })
    expect(await codeOf(hub.access.claim(res.request_id, 'wrong', 'ip'))).toBe('UNAUTHORIZED')
    expect(await codeOf(hub.access.claim(res.request_id, undefined, 'ip'))).toBe('UNAUTHORIZED')
    expect(
      await codeOf(hub.access.claim('00000000-0000-0000-0000-000000000000', res.claim_secret, 'ip')),
    ).toBe('NOT_FOUND')
    expect(await codeOf(hub.access.claim('../../x', res.claim_secret, 'ip'))).toBe('NOT_FOUND')

    await hub.devices.approve(res.device_id, 'role-user')
    const claimed = await hub.access.claim(res.request_id, res.claim_secret, 'ip')
    expect(claimed.device_key).toMatch(new RegExp(`^${DEVICE_KEY_PREFIX}[A-Za-z0-9_-]{43}$`))
    expect(await codeOf(hub.access.claim(res.request_id, res.claim_secret, 'ip'))).toBe('GONE')

    const who = await hub.access.authenticate(claimed.device_key)
    expect(who?.kind).toBe('device')
    expect(who?.kind === 'device' && who.device.id).toBe(res.device_id)
    expect(await hub.access.authenticate(`${claimed.device_key}x`)).toBeNull()
    expect(await hub.access.authenticate('')).toBeNull()
    expect(JSON.stringify(await hub.db('device_keys').select())).not.toContain(claimed.device_key)
  })

  test('revoke, deny and remove kill the key at once; rotate replaces it', async () => {
    const hub = await startHub({ capacityMb: () => 50_000 })
    const res = await hub.access.join({ name: 'laptop' }, '10.0.0.2')
    await hub.devices.approve(res.device_id, 'role-user')
    const { device_key } = await hub.access.claim(res.request_id, res.claim_secret, 'ip')
    expect(await hub.access.authenticate(device_key)).not.toBeNull()
    const events = recordEvents(hub)
    const rotated = await hub.access.rotateKey(res.device_id)
    expect(await hub.access.authenticate(device_key)).toBeNull()
    expect((await hub.access.authenticate(rotated))?.kind).toBe('device')
    await hub.devices.revoke(res.device_id)
    expect(await hub.access.authenticate(rotated)).toBeNull()
    expect(events.filter((e) => e.type === 'device_keys_revoked')).toHaveLength(2)
    expect(await codeOf(hub.access.rotateKey(res.device_id))).toBe('CONFLICT')
  })

  test('join input is validated and rate limited per IP', async () => {
    const hub = await startHub()
    expect(await codeOf(hub.access.join({ name: '' }, 'a'))).toBe('VALIDATION')
    expect(await codeOf(hub.access.join({ name: 'x', extra: 1 }, 'b'))).toBe('VALIDATION')
    expect(await codeOf(hub.access.join({ name: 'x', instance_id: '../..' }, 'c'))).toBe('VALIDATION')
    expect(await codeOf(hub.access.join('not an object', 'd'))).toBe('VALIDATION')
    for (let i = 0; i < 10; i++) await hub.access.join({ name: `p${i}` }, '10.9.9.9')
    const err = await hub.access.join({ name: 'p11' }, '10.9.9.9').catch((e: unknown) => e)
    expect(isSharedLLMError(err, 'RATE_LIMITED')).toBe(true)
    expect((err as { details: { retry_after: number } }).details.retry_after).toBeGreaterThan(0)
    expect(await hub.devices.list()).toHaveLength(10)
    // Another IP is not affected.
    await hub.access.join({ name: 'other' }, '10.9.9.8')
  })

  test('an IPv6 host counts as its /64, and IPv4-mapped addresses as IPv4', async () => {
    const hub = await startHub()
    const joins = Array.from({ length: 10 }, (_, i) =>
      hub.access.join({ name: `v6-${i}` }, `2001:db8:1:2::${(i + 1).toString(16)}`),
    )
    await Promise.all(joins)
    expect(await codeOf(hub.access.join({ name: 'more' }, '2001:db8:1:2:ffff:ffff:ffff:ffff'))).toBe(
      'RATE_LIMITED',
    )
    await hub.access.join({ name: 'next /64' }, '2001:db8:1:3::1')
    for (let i = 0; i < 10; i++) await hub.access.join({ name: `v4-${i}` }, '10.7.7.7')
    expect(await codeOf(hub.access.join({ name: 'mapped' }, '::ffff:10.7.7.7'))).toBe('RATE_LIMITED')
  })

  test('a global cap on join requests per minute holds against many addresses at once', async () => {
    const hub = await startHub()
    const results = await Promise.all(
      Array.from({ length: 75 }, (_, i) =>
        outcome(hub.access.join({ name: `n${i}` }, `10.${i >> 8}.${i & 255}.9`)),
      ),
    )
    expect(results.filter((r) => r === 'ok')).toHaveLength(60)
    expect(results.filter((r) => r === 'RATE_LIMITED')).toHaveLength(15)
    expect(await hub.devices.list()).toHaveLength(60)
  })

  test('at most maxPending wait at once; a pairing code still works; a decision makes room', async () => {
    const hub = await startHub({ access: { maxPending: 5 } })
    const first = await Promise.all(
      Array.from({ length: 7 }, (_, i) => outcome(hub.access.join({ name: `w${i}` }, `10.2.0.${i + 1}`))),
    )
    expect(first.filter((r) => r === 'ok')).toHaveLength(5)
    expect(first.filter((r) => r === 'RATE_LIMITED')).toHaveLength(2)
    const { code } = await hub.access.createPairingCode('role-guest')
    expect((await hub.access.join({ name: 'invited', pairing_code: code }, '10.2.1.1')).status).toBe(
      'approved',
    )
    const [one] = await hub.devices.list({ status: 'pending' })
    await hub.devices.deny(one!.id)
    await hub.access.join({ name: 'now room' }, '10.2.1.2')
  })

  test('a join request still pending after a day is removed, audited and announced', async () => {
    let now = 10_000_000
    const hub = await startHub({ now: () => now })
    const events = recordEvents(hub)
    const old = await hub.access.join({ name: 'stale' }, '10.3.0.1')
    now += 25 * 3600_000
    await hub.access.join({ name: 'fresh' }, '10.3.0.2')
    expect((await hub.devices.list()).map((d) => d.name)).toEqual(['fresh'])
    expect(events.some((e) => e.type === 'device_removed')).toBe(true)
    const [audit] = await hub.auditLog({ target: old.device_id })
    expect(audit).toMatchObject({ actor: 'system', action: 'device.expire' })
  })

  test('a burst of join requests is toasted a few at a time, the rest as one coalesced notice', async () => {
    const hub = await startHub({ access: { notices: { windowMs: 200 } } })
    const events = recordEvents(hub)
    await Promise.all(
      Array.from({ length: 10 }, (_, i) => hub.access.join({ name: `b${i}` }, `10.4.0.${i + 1}`)),
    )
    expect(events.filter((e) => e.type === 'device_pending_approval')).toHaveLength(3)
    await vi.waitFor(() => expect(events.some((e) => e.type === 'join_requests_coalesced')).toBe(true))
    const coalesced = events.filter((e) => e.type === 'join_requests_coalesced')
    expect(coalesced).toHaveLength(1)
    const payload = coalesced[0]!.payload as { count: number; devices: Array<{ name: string }> }
    expect(payload.count).toBe(7)
    expect(payload.devices).toHaveLength(5)
  })

  test('join names: bidi controls refused; \\p{C} removed; NFKC; nothing printable is empty', async () => {
    const hub = await startHub()
    const bidi = await hub.access.join({ name: 'invoice\u202Egnp.exe' }, '10.8.0.1').catch((e: unknown) => e)
    expect(isSharedLLMError(bidi, 'VALIDATION')).toBe(true)
    expect((bidi as Error).message).toMatch(/^name: must not contain bidirectional control/)
    expect(await codeOf(hub.access.join({ name: 'x', platform: 'ios\u2067' }, '10.8.0.1'))).toBe('VALIDATION')
    expect(await codeOf(hub.access.join({ name: '\uFEFF\u200B\u200D' }, '10.8.0.1'))).toBe('VALIDATION')
    const a = await hub.access.join({ name: '\uFEFFAn\u200Bna\u00AD’s <b>phone</b>' }, '10.8.0.2')
    const b = await hub.access.join({ name: 'Ｐｉｘｅｌ\u00A0８' }, '10.8.0.3')
    expect((await hub.devices.get(a.device_id)).name).toBe('Anna’s bphone/b')
    expect((await hub.devices.get(b.device_id)).name).toBe('Pixel 8')
  })

  test("a join that copies a known name is flagged with the other device's address, platform and time", async () => {
    const hub = await startHub()
    const events = recordEvents(hub)
    const real = await hub.access.join({ name: "Anna's phone", platform: 'ios' }, '10.8.1.5')
    await hub.devices.approve(real.device_id, 'role-user')
    // Cyrillic А and о, other case and spacing: reads the same.
    await hub.access.join({ name: "Аnna's  PHОNE", platform: 'android' }, '10.8.1.66')
    const notices = events.filter((e) => e.type === 'device_pending_approval')
    expect(notices[0]?.payload).not.toHaveProperty('duplicates')
    const flagged = notices[1]?.payload as { device: { ip: string }; duplicates: unknown[] }
    expect(flagged.device.ip).toBe('10.8.1.66')
    expect(flagged.duplicates).toEqual([
      {
        id: real.device_id,
        name: "Anna's phone",
        ip: '10.8.1.5',
        platform: 'ios',
        status: 'approved',
        created_at: expect.any(Number),
      },
    ])
  })

  test('claim polls are rate limited per IP (60 a minute)', async () => {
    const hub = await startHub()
    const res = await hub.access.join({ name: 'phone' }, 'ip1')
    for (let i = 0; i < 60; i++) await hub.access.claim(res.request_id, res.claim_secret, 'ip1')
    expect(await codeOf(hub.access.claim(res.request_id, res.claim_secret, 'ip1'))).toBe('RATE_LIMITED')
  })

  test('a peer that joins with its instance id reuses the device discovered over mDNS', async () => {
    const hub = await startHub()
    const discovered = await hub.db.transaction((trx) =>
      hub.devices.insert(
        trx,
        { name: 'gpu-box', source: 'mdns', ip: '10.0.0.7', instance_id: 'inst-0123456789' },
        'mdns',
      ),
    )
    const res = await hub.access.join({ name: 'gpu-box', instance_id: 'inst-0123456789' }, '10.0.0.7')
    expect(res.device_id).toBe(discovered.id)
    expect(await hub.devices.list()).toHaveLength(1)
  })

  describe('an approval belongs to the request the owner saw (no inheriting it by instance id)', () => {
    const instance_id = 'inst-0123456789'
    async function discoveredPeer(hub: Awaited<ReturnType<typeof startHub>>) {
      return hub.db.transaction((trx) =>
        hub.devices.insert(trx, { name: 'gpu-box', source: 'mdns', ip: '10.0.0.7', instance_id }, 'mdns'),
      )
    }
    async function joinedPeer(hub: Awaited<ReturnType<typeof startHub>>, roleId = 'role-admin') {
      const device = await discoveredPeer(hub)
      const req = await hub.access.join({ name: 'gpu-box', instance_id }, '10.0.0.7')
      await hub.devices.approve(device.id, roleId)
      const claimed = await hub.access.claim(req.request_id, req.claim_secret, '10.0.0.7')
      return { device, key: claimed.device_key as string }
    }

    test("a discovered host's first request must come from where it was discovered: an eavesdropper's is new", async () => {
      const hub = await startHub({
        capacityMb: () => 50_000,
        settings: { trust_local_network: true, default_role: 'role-user' },
      })
      const device = await discoveredPeer(hub)
      await hub.devices.approve(device.id, 'role-user') // as trust_local_network does on sight
      // Someone else on the LAN heard the advert (the instance id is in its TXT record) and asks first.
      const early = await hub.access.join({ name: 'gpu-box', instance_id }, '10.0.0.66')
      expect(early.device_id).not.toBe(device.id)
      expect(early.status).toBe('pending')
      expect(await hub.access.claim(early.request_id, early.claim_secret, '10.0.0.66')).toEqual({
        status: 'pending',
        device_id: early.device_id,
      })
      // The host itself, from its discovered address, still gets its trusted approval.
      const real = await hub.access.join({ name: 'gpu-box', instance_id }, '10.0.0.7')
      expect(real).toMatchObject({ device_id: device.id, status: 'approved' })
      expect((await hub.access.claim(real.request_id, real.claim_secret, '10.0.0.7')).device_key).toMatch(
        /^sllm_/,
      )
    })

    test('an approved peer: a join naming its instance id is a new pending device that gets no key', async () => {
      const hub = await startHub({ capacityMb: () => 50_000 })
      const peer = await joinedPeer(hub)
      const events = recordEvents(hub)
      const forged = await hub.access.join({ name: 'gpu-box', instance_id }, '10.0.0.66')
      expect(forged.status).toBe('pending')
      expect(forged.device_id).not.toBe(peer.device.id)
      expect(events.map((e) => e.type)).toEqual(['device_pending_approval'])
      const claim = await hub.access.claim(forged.request_id, forged.claim_secret, '10.0.0.66')
      expect(claim).toEqual({ status: 'pending', device_id: forged.device_id })
      // The real peer keeps its key and its role; the impostor's device does not carry the instance id.
      const principal = await hub.access.authenticate(peer.key)
      expect(principal?.kind === 'device' && principal.device.id).toBe(peer.device.id)
      expect((await hub.devices.get(forged.device_id)).instance_id).toBeNull()
      expect((await hub.devices.findByInstanceId(instance_id))?.id).toBe(peer.device.id)
    })

    test('a peer still waiting: a second request naming it cannot claim what the owner approves', async () => {
      const hub = await startHub({ capacityMb: () => 50_000 })
      const device = await discoveredPeer(hub)
      const real = await hub.access.join({ name: 'gpu-box', instance_id }, '10.0.0.7')
      const forged = await hub.access.join({ name: 'gpu-box', instance_id }, '10.0.0.66')
      expect(forged.device_id).not.toBe(device.id)
      await hub.devices.approve(device.id, 'role-user')
      expect(await hub.access.claim(forged.request_id, forged.claim_secret, '10.0.0.66')).toEqual({
        status: 'pending',
        device_id: forged.device_id,
      })
      const claimed = await hub.access.claim(real.request_id, real.claim_secret, '10.0.0.7')
      expect(claimed.device_key).toMatch(new RegExp(`^${DEVICE_KEY_PREFIX}`))
    })

    test('a discovered host the owner approved before it joined: its first join is not approved', async () => {
      const hub = await startHub({ capacityMb: () => 50_000 })
      const device = await discoveredPeer(hub)
      await hub.devices.approve(device.id, 'role-admin')
      const res = await hub.access.join({ name: 'gpu-box', instance_id }, '10.0.0.66')
      expect(res.status).toBe('pending')
      expect(res.device_id).not.toBe(device.id)
    })

    test('trust_local_network: a host approved on sight keeps it for its first join only', async () => {
      const hub = await startHub({ capacityMb: () => 50_000 })
      await hub.settings.set('trust_local_network', true)
      await hub.settings.set('default_role', 'role-user')
      const device = await discoveredPeer(hub)
      await hub.devices.approve(device.id, 'role-user')
      const first = await hub.access.join({ name: 'gpu-box', instance_id }, '10.0.0.7')
      expect(first).toMatchObject({ status: 'approved', device_id: device.id })
      const second = await hub.access.join({ name: 'gpu-box', instance_id }, '10.0.0.66')
      expect(second.status).toBe('pending')
      expect(second.device_id).not.toBe(device.id)
      // Raised to admin by the owner since: not inherited either.
      const other = await hub.db.transaction((trx) =>
        hub.devices.insert(
          trx,
          { name: 'nas', source: 'mdns', ip: '10.0.0.8', instance_id: 'inst-nas-0001' },
          'mdns',
        ),
      )
      await hub.devices.approve(other.id, 'role-admin')
      const nas = await hub.access.join({ name: 'nas', instance_id: 'inst-nas-0001' }, '10.0.0.66')
      expect(nas.status).toBe('pending')
      expect(nas.device_id).not.toBe(other.id)
    })

    test('a peer that proves itself with its live key re-joins as itself; the new claim replaces the key', async () => {
      const hub = await startHub({ capacityMb: () => 50_000 })
      const peer = await joinedPeer(hub)
      const res = await hub.access.join({ name: 'gpu-box', instance_id }, '10.0.0.9', peer.key)
      expect(res).toMatchObject({ status: 'approved', device_id: peer.device.id })
      const claimed = await hub.access.claim(res.request_id, res.claim_secret, '10.0.0.9')
      expect(claimed.device_key).toBeDefined()
      expect(await hub.access.authenticate(peer.key)).toBeNull()
      // Someone else's key is no proof.
      const other = await hub.access.join({ name: 'phone' }, '10.0.0.20')
      const phone = await hub.devices.approve(other.device_id, 'role-guest')
      const phoneKey = (await hub.access.claim(other.request_id, other.claim_secret, '10.0.0.20'))
        .device_key as string
      expect(phone.status).toBe('approved')
      const forged = await hub.access.join({ name: 'gpu-box', instance_id }, '10.0.0.20', phoneKey)
      expect(forged.status).toBe('pending')
      expect(forged.device_id).not.toBe(peer.device.id)
    })
  })
})

describe('pairing codes', () => {
  test('a code approves the joining device at once with its role, once', async () => {
    const hub = await startHub({ capacityMb: () => 50_000 })
    const pairing = await hub.access.createPairingCode('role-guest')
    expect(pairing.code).toMatch(new RegExp(`^[${PAIRING_ALPHABET}]{8,}$`))
    expect(new Set(PAIRING_ALPHABET).size).toBe(20)
    expect(pairing.path).toBe(`/join?code=${pairing.code}`)
    const events = recordEvents(hub)
    const typed = `${pairing.code.slice(0, 5).toLowerCase()}-${pairing.code.slice(5)}`
    const res = await hub.access.join({ name: 'Kid tablet', pairing_code: typed }, '10.0.0.3')
    expect(res.status).toBe('approved')
    expect(events.map((e) => e.type)).toEqual(['device_approved'])
    expect((await hub.devices.get(res.device_id)).role_id).toBe('role-guest')
    const claimed = await hub.access.claim(res.request_id, res.claim_secret, 'ip')
    expect(claimed.device_key).toBeDefined()
    expect(await codeOf(hub.access.join({ name: 'again', pairing_code: pairing.code }, '10.0.0.4'))).toBe(
      'FORBIDDEN',
    )
  })

  test('codes expire after 10 minutes', async () => {
    let now = 5_000_000
    const hub = await startHub({ now: () => now })
    const { code } = await hub.access.createPairingCode('role-guest')
    now += 10 * 60_000 + 1
    expect(await codeOf(hub.access.join({ name: 'late', pairing_code: code }, 'ip'))).toBe('FORBIDDEN')
    expect(await hub.devices.list()).toHaveLength(0)
  })

  /** A well-formed code that is not `code` and does not name its id. */
  const otherId = (code: string) => (code.startsWith('AC') ? 'DD' : 'AC')

  test('five wrong codes from anyone no longer burn every live code', async () => {
    const hub = await startHub()
    const { code } = await hub.access.createPairingCode('role-user')
    const guesses = Array.from({ length: 5 }, (_, i) =>
      codeOf(
        hub.access.join({ name: `guess${i}`, pairing_code: `${otherId(code)}AAAAAAAA` }, `10.0.0.${i + 1}`),
      ),
    )
    expect(await Promise.all(guesses)).toEqual(Array(5).fill('FORBIDDEN'))
    const res = await hub.access.join({ name: 'owner phone', pairing_code: code }, '10.0.0.99')
    expect(res.status).toBe('approved')
  })

  test("wrong tries that name a code's id cost that code its attempts, and no other code", async () => {
    const hub = await startHub()
    const a = await hub.access.createPairingCode('role-user')
    let b = await hub.access.createPairingCode('role-guest')
    while (b.code.slice(0, 2) === a.code.slice(0, 2)) b = await hub.access.createPairingCode('role-guest')
    const wrong = `${a.code.slice(0, 2)}${a.code.slice(2, 9)}${a.code.endsWith('A') ? 'C' : 'A'}`
    for (let i = 0; i < 5; i++) {
      expect(await codeOf(hub.access.join({ name: `g${i}`, pairing_code: wrong }, `10.1.0.${i + 1}`))).toBe(
        'FORBIDDEN',
      )
    }
    expect(await codeOf(hub.access.join({ name: 'late', pairing_code: a.code }, '10.1.1.1'))).toBe(
      'FORBIDDEN',
    )
    expect((await hub.access.join({ name: 'fine', pairing_code: b.code }, '10.1.1.2')).status).toBe(
      'approved',
    )
  })

  test('a source that keeps guessing waits (per IPv4 address and per IPv6 /64); others do not', async () => {
    const hub = await startHub()
    const { code } = await hub.access.createPairingCode('role-user')
    const guess = (ip: string, i: number) =>
      codeOf(hub.access.join({ name: `g${i}`, pairing_code: `${otherId(code)}QQQQQQ${i}` }, ip))
    for (let i = 0; i < 5; i++) expect(await guess(`2001:db8:5:6::${i + 1}`, i)).toBe('FORBIDDEN')
    // The sixth try from the same /64 waits, even with the right code; another /64 is not affected.
    expect(await codeOf(hub.access.join({ name: 'x', pairing_code: code }, '2001:db8:5:6::abcd'))).toBe(
      'RATE_LIMITED',
    )
    expect((await hub.access.join({ name: 'y', pairing_code: code }, '2001:db8:5:7::1')).status).toBe(
      'approved',
    )
  })
  test('needs an existing role', async () => {
    const hub = await startHub()
    expect(await codeOf(hub.access.createPairingCode('role-nope'))).toBe('NOT_FOUND')
    expect(await codeOf(hub.access.createPairingCode(42))).toBe('VALIDATION')
  })
})

describe('admin secret across processes', () => {
  test('a reset through another hub on the same data dir locks the old secret out within a second', async () => {
    const dir = tempDir()
    const running = await startHub({ dataDir: dir })
    const old = (await running.admin.ensureSecret()) as string
    expect(await running.admin.verifySecret(old)).toBe(true)
    const other = await startHub({ dataDir: dir }) // what `sharedllm admin reset-token` does
    const fresh = await other.admin.resetSecret()
    await new Promise((r) => setTimeout(r, 1100))
    expect(await running.admin.verifySecret(old)).toBe(false)
    expect(await running.admin.verifySecret(fresh)).toBe(true)
  })
})

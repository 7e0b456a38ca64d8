import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  createHub,
  type DnsPacket,
  type EventMap,
  type EventType,
  getInstanceId,
  type Hub,
  instanceLabel,
  openStore,
  orderAddresses,
  parseResponse,
  parseTxt,
  type Sighting,
  sanitizeName,
  silentLogger,
  toSighting,
} from '@sharedllm/core'
import { afterEach, beforeEach, describe, expect, test } from 'vitest'
import { registryFor } from './helpers'

type Captured = DnsPacket & { source: string }
const packets = JSON.parse(
  readFileSync(new URL('./discovery/fixtures/bonjour-packets.json', import.meta.url), 'utf8'),
) as Captured[]
const [announce, goodbye] = packets as [Captured, Captured]

describe('sanitising untrusted names', () => {
  test('drops control, bidi and markup characters and collapses whitespace', () => {
    expect(sanitizeName('  kitchen\u0000\u001b[31m-pc \n\t laptop ')).toBe('kitchen [31m-pc laptop')
    // Format characters (\p{Cf}: bidi, zero-width, BOM) are removed, not turned into spaces.
    expect(sanitizeName('evil\u202Egnp.exe')).toBe('evilgnp.exe')
    expect(sanitizeName('\uFEFFbo\u2066m\u2069')).toBe('bom')
    // NFKC: fullwidth and compatibility forms are the plain letters.
    expect(sanitizeName('ｋｉｔｃｈｅｎ\uFB01')).toBe('kitchenfi')
    expect(sanitizeName('<script>alert("x")</script>')).toBe('scriptalert(x)/script')
    expect(sanitizeName('zero\u200Bwidth')).toBe('zerowidth')
    expect(sanitizeName('Küche 💻')).toBe('Küche 💻')
  })

  test('limits the length in characters, never splitting one', () => {
    expect(sanitizeName('x'.repeat(10_000))).toHaveLength(64)
    const emoji = sanitizeName('💻'.repeat(100))
    expect(Array.from(emoji)).toHaveLength(64)
    expect(emoji).not.toMatch(/[\uD800-\uDFFF](?![\uDC00-\uDFFF])/u)
  })

  test('nothing printable left, or not a string: empty', () => {
    expect(sanitizeName('\u0000\u0001 \u202E')).toBe('')
    expect(sanitizeName(42)).toBe('')
  })
})

describe('TXT records', () => {
  test('reads the fields of a real announcement', () => {
    const txt = announce.answers?.find((r) => r.type === 'TXT')?.data
    expect(parseTxt(txt)).toEqual({
      instance_id: '1b4e28ba-2fa1-41d2-883f-0016d3cca427',
      version: '0.1.0',
      api_port: 8080,
      auth: 'required',
      name: 'kitchen-pc',
      extra: {},
    })
  })

  test('accepts buffers, keeps the first of a repeated key, and bounds values', () => {
    const txt = parseTxt([
      Buffer.from('id=abcdef12-3456'),
      Buffer.from('id=ffffffff-ffff'),
      Buffer.from(`name=${'n'.repeat(300)}`),
      Buffer.from('port=99999'),
      Buffer.from('v=1.0; rm -rf /'),
      Buffer.from('https=8443'),
      Buffer.from('WEIRD KEY=1'),
    ])
    expect(txt).toMatchObject({
      instance_id: 'abcdef12-3456',
      api_port: null,
      version: null,
      extra: { https: '8443' },
    })
    expect(txt?.name).toHaveLength(64)
  })

  test('without a valid instance id it is not a sharedLLM host', () => {
    expect(parseTxt(['v=0.1.0'])).toBeNull()
    expect(parseTxt(['id=short'])).toBeNull()
    expect(parseTxt(['id=../../etc/passwd'])).toBeNull()
    expect(parseTxt('nonsense')).toBeNull()
  })
})

describe('responses to sightings', () => {
  test('a real announcement resolves to the packet address, not the advertised hostname', () => {
    const parsed = parseResponse(announce, announce.source)
    expect(parsed.goodbyes).toEqual([])
    expect(parsed.adverts).toHaveLength(1)
    const s = toSighting(parsed.adverts[0]!)
    expect(s).toMatchObject({
      instance_id: '1b4e28ba-2fa1-41d2-883f-0016d3cca427',
      name: 'kitchen-pc',
      port: 8080,
      version: '0.1.0',
      auth: 'required',
    })
    expect(s?.addresses[0]).toBe(announce.source)
    expect(s?.addresses).not.toContain('vm')
    // Link-local addresses are dropped: no URL can carry the zone one needs.
    expect(s?.addresses.some((a) => a.startsWith('fe80'))).toBe(false)
  })

  test('a real goodbye is reported as one', () => {
    const parsed = parseResponse(goodbye, goodbye.source)
    expect(parsed.adverts).toEqual([])
    expect(parsed.goodbyes).toEqual(['kitchen-pc (1b4e28ba)._sharedllm._tcp.local'])
  })

  test('a PTR without SRV/TXT asks for them; other service types are ignored', () => {
    const parsed = parseResponse(
      {
        answers: [
          { name: '_sharedllm._tcp.local', type: 'PTR', ttl: 120, data: 'x._sharedllm._tcp.local' },
          { name: '_http._tcp.local', type: 'PTR', ttl: 120, data: 'y._http._tcp.local' },
          { name: '_sharedllm._tcp.local', type: 'PTR', ttl: 120, data: 'z._http._tcp.local' },
        ],
      },
      '10.0.0.9',
    )
    expect(parsed).toEqual({ adverts: [], goodbyes: [], incomplete: ['x._sharedllm._tcp.local'] })
  })

  test('loopback, multicast and unspecified addresses from an advert are dropped', () => {
    expect(
      orderAddresses(['127.0.0.1', '0.0.0.0', '224.0.0.251', '::1', 'ff02::fb', 'vm', '192.168.1.20'], null),
    ).toEqual(['192.168.1.20'])
    const spoof = parseResponse(announce, '127.0.0.1').adverts[0]!
    expect(toSighting({ ...spoof, addresses: ['127.0.0.1'] })).toBeNull()
  })

  test('addresses are canonicalised before filtering: every spelling of loopback, link-local, mapped, ours', () => {
    expect(
      orderAddresses(
        [
          '::ffff:7f00:1',
          '::ffff:127.0.0.1',
          '0:0:0:0:0:0:0:1',
          '::0:1',
          '[::1]',
          '127.1.2.3',
          '169.254.10.20',
          'fe80::1%eth0',
          'FE80::abcd',
          '::',
          '::ffff:0.0.0.0',
          '10.0.0.7',
          '::ffff:c0a8:114',
          '2001:DB8:0:0:0:0:0:5',
        ],
        null,
        8,
        new Set(['10.0.0.7']),
      ),
    ).toEqual(['192.168.1.20', '2001:db8::5'])
    const spoof = parseResponse(announce, announce.source).adverts[0]!
    // An advert whose only addresses are this host's own is no other host.
    expect(
      toSighting({ ...spoof, source: null, addresses: ['192.168.1.77'] }, new Set(['192.168.1.77'])),
    ).toBeNull()
  })

  test('the advertised label fits a DNS label and carries the id', () => {
    const label = instanceLabel('ü'.repeat(200), '1b4e28ba-2fa1-41d2-883f-0016d3cca427')
    expect(Buffer.byteLength(label)).toBeLessThanOrEqual(63)
    expect(label.endsWith(' (1b4e28ba)')).toBe(true)
    expect(instanceLabel('my.host', 'abcdef12-0000')).toBe('my-host (abcdef12)')
  })
})

function sighting(id: string, over: Partial<Sighting> = {}): Sighting {
  return {
    fqdn: `h-${id}._sharedllm._tcp.local`,
    instance_id: id,
    name: `host ${id.slice(0, 6)}`,
    version: '0.1.0',
    port: 8080,
    addresses: ['10.1.2.3'],
    auth: 'required',
    extra: {},
    ...over,
  }
}

describe('sightings to devices (real SQLite, no network)', () => {
  let dir: string
  let hub: Hub
  let events: Array<{ type: EventType; payload: EventMap[EventType] }>
  const SELF = 'self0000-0000-0000'
  const registry = (newEntriesPerMinute = 10) => registryFor(hub, SELF, newEntriesPerMinute)
  const types = () => events.map((e) => e.type).filter((t) => t !== 'peer_updated')

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sllm-disc-'))
    hub = createHub({ dataDir: dir, logger: silentLogger, discovery: false, providers: false, ollama: false })
    await hub.start()
    events = []
    hub.bus.onAny((type, payload) => events.push({ type, payload }))
  })
  afterEach(async () => {
    await hub.stop()
    rmSync(dir, { recursive: true, force: true })
  })

  test('a new host becomes one pending mdns device and a discovered peer, with events', async () => {
    const r = registry()
    expect(await r.seen(sighting('aaaaaaaa-1111'))).toBe('created')
    const [device] = await hub.devices.list()
    expect(device).toMatchObject({
      name: 'host aaaaaa',
      source: 'mdns',
      status: 'pending',
      ip: '10.1.2.3',
      online: true,
      instance_id: 'aaaaaaaa-1111',
    })
    expect(types()).toEqual(['device_discovered', 'device_pending_approval'])
    const discovered = events.find((e) => e.type === 'device_discovered')!.payload
    expect((discovered as EventMap['device_discovered']).addresses).toEqual(['10.1.2.3'])
    const peers = await hub.db('peers').select()
    expect(peers).toHaveLength(1)
    expect(peers[0]).toMatchObject({ instance_id: 'aaaaaaaa-1111', status: 'discovered', port: 8080 })
  })

  test('our own advert is ignored', async () => {
    expect(await registry().seen(sighting(SELF))).toBe('self')
    expect(await hub.devices.list()).toEqual([])
  })

  test('seen again: last_seen and address updated, no new pending entry; gone: offline; back: online', async () => {
    const r = registry()
    await r.seen(sighting('bbbbbbbb-2222'))
    const first = (await hub.devices.list())[0]!
    await new Promise((res) => setTimeout(res, 5))
    expect(await r.seen(sighting('bbbbbbbb-2222', { addresses: ['10.1.2.4'] }))).toBe('updated')
    const again = (await hub.devices.list())[0]!
    expect(again.last_seen!).toBeGreaterThan(first.last_seen!)
    expect(again.ip).toBe('10.1.2.4')
    expect(types()).toEqual(['device_discovered', 'device_pending_approval'])

    await r.gone('bbbbbbbb-2222')
    expect((await hub.devices.list())[0]!.online).toBe(false)
    expect((await hub.db('peers').first()).online).toBe(0)
    await r.seen(sighting('bbbbbbbb-2222'))
    expect(types()).toEqual([
      'device_discovered',
      'device_pending_approval',
      'device_offline',
      'device_online',
    ])
  })

  test('a denied device stays denied when it is seen again', async () => {
    const r = registry()
    await r.seen(sighting('cccccccc-3333'))
    const device = (await hub.devices.list())[0]!
    await hub.devices.deny(device.id)
    await r.gone('cccccccc-3333')
    await r.seen(sighting('cccccccc-3333'))
    const after = await hub.devices.get(device.id)
    expect(after).toMatchObject({ status: 'denied', online: true })
    expect(await hub.devices.list()).toHaveLength(1)
  })

  test('a spoofed burst for one instance id makes one pending entry, whatever the names', async () => {
    const r = registry()
    const outcomes = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        r.seen(sighting('dddddddd-4444', { name: `spoof ${i}`, fqdn: `s${i}` })),
      ),
    )
    // Queued sightings of one id are coalesced into one store write.
    expect(new Set(outcomes)).toEqual(new Set(['created']))
    for (let i = 0; i < 5; i++) {
      expect(await r.seen(sighting('dddddddd-4444', { name: `<b>again</b> ${i}` }))).toBe('updated')
    }
    expect(await hub.devices.list()).toHaveLength(1)
    expect((await hub.devices.list())[0]!.name).toBe('spoof 49')
    expect(await hub.db('peers').select()).toHaveLength(1)
    expect(types().filter((t) => t === 'device_pending_approval')).toHaveLength(1)
  })

  test('new entries are rate-limited; a limited host is taken once the window allows', async () => {
    const r = registry(3)
    const outcomes = []
    for (let i = 0; i < 8; i++) outcomes.push(await r.seen(sighting(`eeeeeeee-${1000 + i}`)))
    expect(outcomes.filter((o) => o === 'created')).toHaveLength(3)
    expect(outcomes.filter((o) => o === 'rate_limited')).toHaveLength(5)
    expect(await hub.devices.list()).toHaveLength(3)
    // Already known hosts are never limited.
    expect(await r.seen(sighting('eeeeeeee-1000'))).toBe('updated')
  })

  test('trust_local_network approves with default_role, and the audit log says so', async () => {
    await hub.settings.set('trust_local_network', true)
    await hub.settings.set('default_role', 'role-user')
    events = []
    expect(await registry().seen(sighting('ffffffff-5555'))).toBe('trusted')
    const [device] = await hub.devices.list()
    expect(device).toMatchObject({ status: 'approved', role_id: 'role-user', source: 'mdns' })
    expect(types()).toEqual(['device_discovered', 'device_approved'])
    const audit = await hub.auditLog({ target: device!.id })
    expect(audit.map((a) => [a.actor, a.action])).toEqual([
      ['mdns', 'device.auto_approve'],
      ['mdns', 'device.approve'],
      ['mdns', 'device.add'],
    ])
    expect(audit[0]!.after).toMatchObject({ reason: 'trust_local_network', role_id: 'role-user' })
  })

  test('trust_local_network off (the default): never approved', async () => {
    await registry().seen(sighting('ffffffff-6666'))
    expect((await hub.devices.list())[0]!.status).toBe('pending')
  })
})

describe('instance id', () => {
  test('created once per data dir and kept across restarts', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sllm-inst-'))
    const other = mkdtempSync(join(tmpdir(), 'sllm-inst-'))
    try {
      let store = await openStore(dir)
      const id = await getInstanceId(store.knex)
      expect(id).toMatch(/^[0-9a-f-]{36}$/)
      expect(await getInstanceId(store.knex)).toBe(id)
      await store.close()
      store = await openStore(dir)
      expect(await getInstanceId(store.knex)).toBe(id)
      await store.close()
      const s2 = await openStore(other)
      expect(await getInstanceId(s2.knex)).not.toBe(id)
      await s2.close()
    } finally {
      rmSync(dir, { recursive: true, force: true })
      rmSync(other, { recursive: true, force: true })
    }
  })
})

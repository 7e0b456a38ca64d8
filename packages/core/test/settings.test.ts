import { describe, expect, test } from 'vitest'
import { isSharedLLMError, SETTING_KEYS } from '../src/index'
import { dbState, recordEvents, startHub, tempDir } from './helpers'

describe('settings', () => {
  test('defaults', async () => {
    const hub = await startHub()
    expect(hub.settings.all()).toMatchObject({
      api_port: 8080,
      ollama_host: 'http://127.0.0.1:11434',
      auto_start_ollama: true,
      mdns_enabled: true,
      trust_local_network: false,
      default_role: 'role-guest',
      allow_oversubscription: false,
    })
    expect(hub.settings.list().map((s) => s.key)).toEqual(SETTING_KEYS)
  })

  test('set validates, persists across restart, audits and emits', async () => {
    const dir = tempDir()
    let hub = await startHub({ dataDir: dir })
    const events = recordEvents(hub)
    await hub.settings.set('api_port', 9090)
    await hub.settings.set('ollama_host', 'http://127.0.0.1:11500/')
    await hub.settings.set('default_role', 'role-user')
    await hub.settings.set('allowed_hosts', ['gpu-box.lan'])
    expect(events.filter((e) => e.type === 'setting_changed')).toHaveLength(4)
    expect((await hub.auditLog())[0]).toMatchObject({ action: 'setting.set', target: 'allowed_hosts' })
    await hub.stop()
    hub = await startHub({ dataDir: dir })
    expect(hub.settings.get('api_port')).toBe(9090)
    expect(hub.settings.get('ollama_host')).toBe('http://127.0.0.1:11500')
    expect(hub.settings.get('default_role')).toBe('role-user')
    expect(hub.settings.get('allowed_hosts')).toEqual(['gpu-box.lan'])
  })

  test.each([
    ['api_port', 0, /^api_port:/],
    ['api_port', 70000, /^api_port:/],
    ['api_port', '8080', /^api_port:/],
    ['ollama_host', 'ftp://x', /^ollama_host: must be an http/],
    ['ollama_host', 'http://h:1/path', /^ollama_host/],
    ['auto_start_ollama', 'yes', /^auto_start_ollama:/],
    ['default_role', 'role-nope', /^default_role: role 'role-nope' does not exist/],
    ['host_reserve_mb', -5, /^host_reserve_mb:/],
    ['extra_providers', ['../../etc/passwd'], /^extra_providers/],
    ['allowed_hosts', ['evil host'], /^allowed_hosts/],
  ])('%s = %j is rejected naming the key, changing nothing', async (key, value, message) => {
    const hub = await startHub()
    const before = await dbState(hub)
    const err = await hub.settings.set(key, value).catch((e: unknown) => e)
    expect(isSharedLLMError(err, 'VALIDATION')).toBe(true)
    expect((err as Error).message).toMatch(message)
    expect(await dbState(hub)).toBe(before)
  })

  test('unknown key is NOT_FOUND naming it', async () => {
    const hub = await startHub()
    const err = await hub.settings.set('admin_password', 'x').catch((e: unknown) => e)
    expect(isSharedLLMError(err, 'NOT_FOUND')).toBe(true)
    expect((err as Error).message).toContain("'admin_password'")
  })

  test('overrides from the command line win without being stored', async () => {
    const dir = tempDir()
    let hub = await startHub({ dataDir: dir, settings: { mdns_enabled: false } })
    expect(hub.settings.get('mdns_enabled')).toBe(false)
    await hub.stop()
    hub = await startHub({ dataDir: dir })
    expect(hub.settings.get('mdns_enabled')).toBe(true)
  })

  test('a value the owner sets wins over the override for the rest of the run', async () => {
    const hub = await startHub({ settings: { ollama_host: 'http://127.0.0.1:11500' } })
    expect(hub.settings.get('ollama_host')).toBe('http://127.0.0.1:11500')
    await hub.settings.set('ollama_host', 'http://127.0.0.1:11600')
    expect(hub.settings.get('ollama_host')).toBe('http://127.0.0.1:11600')
    expect(hub.settings.list().find((s) => s.key === 'ollama_host')?.value).toBe('http://127.0.0.1:11600')
  })

  test('a stored value that no longer validates falls back to the default', async () => {
    const dir = tempDir()
    let hub = await startHub({ dataDir: dir })
    await hub.db('settings').insert({ key: 'api_port', value: '"garbage"', updated_at: 0 })
    await hub.stop()
    hub = await startHub({ dataDir: dir })
    expect(hub.settings.get('api_port')).toBe(8080)
  })
})

describe('events', () => {
  test('subscribing returns an unsubscribe function; a throwing listener harms nobody', async () => {
    const hub = await startHub()
    const seen: string[] = []
    hub.on('device_pending_approval', () => {
      throw new Error('boom')
    })
    const off = hub.on('device_pending_approval', ({ device }) => seen.push(device.name))
    await hub.devices.add({ name: 'one', ip: '10.0.0.1' })
    off()
    await hub.devices.add({ name: 'two', ip: '10.0.0.2' })
    expect(seen).toEqual(['one'])
  })
})

import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, test } from 'vitest'
import { isSharedLLMError, readConfigFile, SETTING_KEYS } from '../src/index'
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
    ['default_role', 'role-admin', /^default_role: cannot be the admin role/],
    ['allowed_hosts', ['evil host'], /^allowed_hosts/],
    ['usage_rollup_retention_days', 31, /^usage_rollup_retention_days: must be at least 32 days/],
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

describe('dangerous settings', () => {
  test.each([
    ['ollama_bin', '/usr/bin/touch'],
    ['extra_providers', ['sharedllm-provider-evil']],
  ])('%s cannot be set over the API: FORBIDDEN naming the key, nothing changes', async (key, value) => {
    const hub = await startHub()
    const events = recordEvents(hub)
    const before = await dbState(hub)
    const err = await hub.settings.set(key, value).catch((e: unknown) => e)
    expect(isSharedLLMError(err, 'FORBIDDEN')).toBe(true)
    expect((err as Error).message).toMatch(
      new RegExp(`^${key}: set only from the command line or the config file`),
    )
    expect(await dbState(hub)).toBe(before)
    expect(events).toEqual([])
  })

  test('command-line values of them work; values an older version stored are ignored', async () => {
    const dir = tempDir()
    let hub = await startHub({ dataDir: dir, settings: { ollama_bin: '/opt/ollama/bin/ollama' } })
    expect(hub.settings.get('ollama_bin')).toBe('/opt/ollama/bin/ollama')
    await hub.db('settings').insert([
      { key: 'ollama_bin', value: '"/usr/bin/touch"', updated_at: 0 },
      { key: 'extra_providers', value: '["evil"]', updated_at: 0 },
      { key: 'ollama_host', value: '"http://203.0.113.9:11434"', updated_at: 0 },
    ])
    await hub.stop()
    hub = await startHub({ dataDir: dir })
    expect(hub.settings.get('ollama_bin')).toBeNull()
    expect(hub.settings.get('extra_providers')).toEqual([])
    expect(hub.settings.get('ollama_host')).toBe('http://127.0.0.1:11434')
  })

  test('a relative ollama_bin from the command line stops the start naming the key', async () => {
    const err = await startHub({ settings: { ollama_bin: 'ollama' } }).catch((e: unknown) => e)
    expect(isSharedLLMError(err, 'VALIDATION')).toBe(true)
    expect((err as Error).message).toMatch(/ollama_bin: must be an absolute path/)
  })

  test.each([
    'http://localhost:11434',
    'http://127.0.0.1:11500',
    'http://127.8.9.10:1',
    'http://[::1]:11434',
    'http://[0:0:0:0:0:0:0:1]:11434',
    'http://[::0:1]:11434',
    'http://[::ffff:7f00:1]:11434',
  ])('ollama_host %s is loopback: accepted', async (url) => {
    const hub = await startHub()
    await hub.settings.set('ollama_host', url)
  })

  test.each([
    'http://192.168.1.50:11434',
    'http://[fe80::1]:11434',
    'http://[::ffff:c0a8:132]:11434',
    'http://gpu-box.lan:11434',
    'http://0.0.0.0:11434',
  ])('ollama_host %s leaves the machine: FORBIDDEN without --allow-remote-ollama', async (url) => {
    const hub = await startHub()
    const before = await dbState(hub)
    const err = await hub.settings.set('ollama_host', url).catch((e: unknown) => e)
    expect(isSharedLLMError(err, 'FORBIDDEN')).toBe(true)
    expect((err as Error).message).toMatch(/^ollama_host: must be a loopback address.*--allow-remote-ollama/)
    expect(await dbState(hub)).toBe(before)
    const allowed = await startHub({ allowRemoteOllama: true })
    await allowed.settings.set('ollama_host', url)
    expect(allowed.settings.get('ollama_host')).toBe(url)
  })

  test('a remote ollama_host on the command line needs --allow-remote-ollama', async () => {
    const err = await startHub({ settings: { ollama_host: 'http://10.0.0.5:11434' } }).catch(
      (e: unknown) => e,
    )
    expect(isSharedLLMError(err, 'FORBIDDEN')).toBe(true)
    const hub = await startHub({
      settings: { ollama_host: 'http://10.0.0.5:11434' },
      allowRemoteOllama: true,
    })
    expect(hub.settings.get('ollama_host')).toBe('http://10.0.0.5:11434')
  })

  test('every change is audited and announced to the dashboard as a security change', async () => {
    const hub = await startHub()
    const events = recordEvents(hub)
    await hub.settings.set('host_reserve_mb', 1024, 'admin')
    expect(events.map((e) => e.type)).toEqual(['setting_changed', 'security_changed'])
    expect(events[1]?.payload).toMatchObject({
      actor: 'admin',
      action: 'setting.set',
      target: 'host_reserve_mb',
    })
    const [entry] = await hub.auditLog({ limit: 1 })
    expect(entry).toMatchObject({ actor: 'admin', action: 'setting.set', target: 'host_reserve_mb' })
  })
})

describe('config file', () => {
  test('sets any setting, the dangerous ones included, and allow_remote_ollama', async () => {
    const file = join(tempDir(), 'config.json')
    writeFileSync(
      file,
      JSON.stringify({
        ollama_bin: '/opt/ollama',
        extra_providers: ['sharedllm-provider-tpu'],
        ollama_host: 'http://10.0.0.5:11434',
        allow_remote_ollama: true,
      }),
    )
    const config = await readConfigFile(file)
    expect(config).toEqual({
      settings: {
        ollama_bin: '/opt/ollama',
        extra_providers: ['sharedllm-provider-tpu'],
        ollama_host: 'http://10.0.0.5:11434',
      },
      allowRemoteOllama: true,
    })
    const hub = await startHub({ settings: config.settings, allowRemoteOllama: config.allowRemoteOllama })
    expect(hub.settings.get('extra_providers')).toEqual(['sharedllm-provider-tpu'])
  })

  test.each([
    ['{"ollama_bin": "ollama"}', /config\.json: ollama_bin: must be an absolute path/],
    ['{"olama_bin": "/x"}', /config\.json: unknown key 'olama_bin'/],
    ['{"api_port": "80"}', /config\.json: api_port: /],
    ['{"default_role": "role-admin"}', /config\.json: default_role: cannot be the admin role/],
    ['{ not json', /config\.json: not valid JSON/],
    ['[]', /config\.json: /],
  ])('%s is a VALIDATION error naming the file and key', async (text, message) => {
    const file = join(tempDir(), 'config.json')
    writeFileSync(file, text)
    const err = await readConfigFile(file).catch((e: unknown) => e)
    expect(isSharedLLMError(err, 'VALIDATION')).toBe(true)
    expect((err as Error).message).toMatch(message)
  })

  test('a missing default file is empty; a missing --config file is an error', async () => {
    const file = join(tempDir(), 'config.json')
    expect(await readConfigFile(file)).toEqual({ settings: {}, allowRemoteOllama: false })
    const err = await readConfigFile(file, { required: true }).catch((e: unknown) => e)
    expect(isSharedLLMError(err, 'VALIDATION')).toBe(true)
    expect((err as Error).message).toMatch(/cannot be read/)
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

import { readFileSync } from 'node:fs'
import { describe, expect, test, vi } from 'vitest'
import { delimiter } from 'node:path'
import { createHub, defineProvider, isProcessGone, isSharedLLMError, VERSION } from '../src/index'
import { fakeOllamaDir, freeLoopbackPort } from '../src/testing/fake-ollama'
import { startHub, tempDir } from './helpers'

describe('hub', () => {
  test('VERSION matches package.json', () => {
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'))
    expect(VERSION).toBe(pkg.version)
  })

  test('calls before start are a clear error; a stopped hub cannot be restarted', async () => {
    const hub = createHub({ dataDir: tempDir(), providers: false, ollama: false, discovery: false })
    expect(() => hub.db).toThrow(/not started/)
    await hub.start()
    await hub.start() // idempotent
    expect(hub.instanceId).toMatch(/^[A-Za-z0-9-]{8,64}$/)
    await hub.stop()
    const err = await hub.start().catch((e: unknown) => e)
    expect(isSharedLLMError(err)).toBe(true)
  })

  test('the instance id is stable per data dir', async () => {
    const dir = tempDir()
    const a = await startHub({ dataDir: dir })
    const id = a.instanceId
    await a.stop()
    const b = await startHub({ dataDir: dir })
    expect(b.instanceId).toBe(id)
  })

  test('capacity comes from options until providers supply it', async () => {
    const hub = await startHub({ capacityMb: () => 1234 })
    expect(hub.capacityMb()).toBe(1234)
    const none = await startHub()
    expect(none.capacityMb()).toBeUndefined()
    expect(none.freeMb()).toBeUndefined()
  })

  test('free memory is the primary devices’ free memory as last sampled', async () => {
    const GiB = 2 ** 30
    const gpu = (localId: string, usedGiB: number) => ({
      localId,
      name: `GPU ${localId}`,
      kind: 'dedicated' as const,
      totalBytes: 24 * GiB,
      usedBytes: usedGiB * GiB,
    })
    const provider = defineProvider({
      name: 'twogpus',
      isAvailable: async () => true,
      snapshot: async () => [gpu('0', 20), gpu('1', 2.5)],
    })
    const hub = await startHub({ providers: [provider], probeIntervalMs: 60_000 })
    expect(hub.freeMb()).toBe(4 * 1024 + 21.5 * 1024)
  })

  test('changing ollama_host in the settings moves the Ollama it owns to the new address', async () => {
    const [a, b] = [await freeLoopbackPort(), await freeLoopbackPort()]
    const hub = await startHub({
      settings: { ollama_host: `http://127.0.0.1:${a}` },
      ollama: {
        healthIntervalMs: 200,
        env: { ...process.env, PATH: `${fakeOllamaDir}${delimiter}${process.env.PATH}` },
      },
    })
    const before = hub.ollama.status()
    expect(before).toMatchObject({ running: true, owned: true, host: `http://127.0.0.1:${a}` })
    await hub.settings.set('ollama_host', `http://127.0.0.1:${b}`)
    await vi.waitFor(
      () => expect(hub.ollama.status()).toMatchObject({ running: true, host: `http://127.0.0.1:${b}` }),
      { timeout: 8000, interval: 20 },
    )
    expect(isProcessGone(before.pid!)).toBe(true)
    const after = hub.ollama.status()
    expect(after).toMatchObject({ owned: true, restarts: 0 })
    expect(after.pid).not.toBe(before.pid)
    await hub.stop()
    expect(isProcessGone(after.pid!)).toBe(true)
  })
})

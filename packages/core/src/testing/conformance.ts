import assert from 'node:assert/strict'
import { isSharedLLMError } from '../errors'
import type { MemoryDevice, MemoryKind } from '../protocol/types'
import type { MemoryProvider } from '../providers/types'
import { createFakeHost, type FakeHost } from './fake-host'

/** vitest's `test` (or `it`), or anything with its call shape; core does not import vitest itself. */
export type TestFn = (name: string, fn: () => Promise<void> | void, timeoutMs?: number) => unknown

export interface ConformanceOptions {
  /** Built fresh for each test. */
  provider: () => MemoryProvider
  /** A host on which the provider is available and snapshots succeed, built from real captured outputs. */
  availableHost: () => FakeHost
  /**
   * Hosts on which the provider must report not available (wrong platform, tool missing, driver not
   * loaded). A bare Linux host with no tools and no files is always checked too.
   */
  unavailableHosts?: Record<string, () => FakeHost>
  /** Switches for what the provider can do; each one turns a group of checks on or off. */
  capabilities?: {
    /** The kinds `availableHost` must produce. @default any kind */
    kinds?: MemoryKind[]
    /** Exactly this many devices on `availableHost`. @default at least one */
    deviceCount?: number
    /** Runs a command on every snapshot, so a hung command must end when the signal aborts. @default true */
    execOnSnapshot?: boolean
    /** Names it must supersede (apple: ['ram']). @default [] */
    supersedes?: string[]
  }
  /** Prefix for the test names. @default the provider's name */
  label?: string
}

const KINDS: MemoryKind[] = ['dedicated', 'unified', 'system']

/**
 * The conformance suite every memory provider package runs:
 * `runProviderConformance(test, { provider: () => myProvider, availableHost: () => createFakeHost({...}) })`.
 * It checks the contract in DESIGN.md "Memory providers" with a fake host: availability never throws,
 * ids are stamped and stable, byte counts are sane, broken tools and garbage output are errors (never NaN),
 * and a hung tool ends when the probe loop aborts.
 */
export function runProviderConformance(test: TestFn, o: ConformanceOptions): void {
  const caps = o.capabilities ?? {}
  const label = o.label ?? o.provider().name

  test(`${label}: has a valid name, priority and supersedes list`, () => {
    const p = o.provider()
    assert.match(p.name, /^[a-z][a-z0-9-]*$/)
    assert.ok(Number.isFinite(p.priority), 'priority must be a finite number')
    assert.deepEqual([...(p.supersedes ?? [])].sort(), [...(caps.supersedes ?? [])].sort())
    assert.equal(typeof p.isAvailable, 'function')
    assert.equal(typeof p.snapshot, 'function')
  })

  test(`${label}: is available on a host with its tools`, async () => {
    assert.equal(await o.provider().isAvailable(o.availableHost()), true)
  })

  const unavailable: Record<string, () => FakeHost> = {
    'a bare Linux host': () => createFakeHost({ platform: 'linux', arch: 'x64' }),
    ...o.unavailableHosts,
  }
  for (const [what, make] of Object.entries(unavailable)) {
    test(`${label}: is not available on ${what}, without throwing`, async () => {
      assert.equal(await o.provider().isAvailable(make()), false)
    })
  }

  test(`${label}: isAvailable does not throw when every host call fails`, async () => {
    const h = o.availableHost()
    const broken: FakeHost = {
      ...h,
      exec: async () => {
        throw new Error('exec exploded')
      },
      readFile: async () => {
        throw Object.assign(new Error('EACCES: permission denied'), { code: 'EACCES' })
      },
      readdir: async () => {
        throw Object.assign(new Error('EACCES: permission denied'), { code: 'EACCES' })
      },
    }
    const r = await o.provider().isAvailable(broken)
    assert.equal(typeof r, 'boolean')
  })

  test(`${label}: snapshot returns stamped, valid devices`, async () => {
    const p = o.provider()
    const devices = await p.snapshot(o.availableHost())
    if (caps.deviceCount !== undefined) assert.equal(devices.length, caps.deviceCount)
    else assert.ok(devices.length > 0, 'expected at least one device')
    assertValidDevices(p.name, devices, caps.kinds)
  })

  test(`${label}: device ids are stable across snapshots`, async () => {
    const p = o.provider()
    const h = o.availableHost()
    const a = await p.snapshot(h)
    const b = await p.snapshot(h)
    assert.deepEqual(
      b.map((d) => d.id),
      a.map((d) => d.id),
    )
  })

  test(`${label}: garbage output is an error or valid devices, never NaN`, async () => {
    for (const text of ['', 'garbage\n', '[N/A], [N/A]\n', '-1\n', '{"card0": {}}\n', 'NaN\n']) {
      const p = o.provider()
      try {
        const devices = await p.snapshot(o.availableHost().withAllOutputs(text))
        assertValidDevices(p.name, devices, undefined)
      } catch (err) {
        assert.ok(
          isSharedLLMError(err),
          `expected a SharedLLMError for output ${JSON.stringify(text)}, got ${err}`,
        )
        assert.equal(err.code, 'PROVIDER_FAILED')
      }
    }
  })

  if (caps.execOnSnapshot !== false) {
    test(`${label}: a failing tool is a PROVIDER_FAILED error naming the provider`, async () => {
      const p = o.provider()
      const err = await p.snapshot(o.availableHost().withFailingCommands(9, 'driver not loaded')).then(
        () => undefined,
        (e: unknown) => e,
      )
      assert.ok(isSharedLLMError(err, 'PROVIDER_FAILED'), `expected PROVIDER_FAILED, got ${String(err)}`)
      assert.ok(err.message.includes(p.name))
      assert.equal(err.details?.provider, p.name)
    })

    test(`${label}: a hung tool ends when the signal aborts`, async () => {
      const p = o.provider()
      const h = o.availableHost()
      const hung = createFakeHost({ platform: h.platform, arch: h.arch })
      const host: FakeHost = {
        ...h,
        exec: (cmd, args, opts) => {
          hung.setCommand(cmd, { hang: true })
          return hung.exec(cmd, args, opts)
        },
      }
      const controller = new AbortController()
      const started = Date.now()
      setTimeout(() => controller.abort(), 50)
      const err = await p.snapshot(host, controller.signal).then(
        () => undefined,
        (e: unknown) => e,
      )
      assert.ok(isSharedLLMError(err, 'CANCELLED'), `expected CANCELLED, got ${String(err)}`)
      assert.ok(Date.now() - started < 2000, 'the snapshot must end soon after the abort')
    })
  }
}

function assertValidDevices(name: string, devices: MemoryDevice[], kinds: MemoryKind[] | undefined): void {
  const ids = new Set<string>()
  for (const d of devices) {
    assert.ok(
      d.id.startsWith(`${name}:`) && d.id.length > name.length + 1,
      `id '${d.id}' must be '${name}:<localId>'`,
    )
    assert.ok(!ids.has(d.id), `duplicate id ${d.id}`)
    ids.add(d.id)
    assert.ok(d.name.length > 0)
    assert.ok((kinds ?? KINDS).includes(d.kind), `unexpected kind ${d.kind}`)
    for (const v of [d.totalBytes, d.usedBytes, d.freeBytes]) {
      assert.ok(Number.isSafeInteger(v) && v >= 0, `byte count ${v} must be a non-negative integer`)
    }
    assert.ok(d.usedBytes <= d.totalBytes && d.freeBytes <= d.totalBytes)
  }
}

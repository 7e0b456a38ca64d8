import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach } from 'vitest'
import { createHub, DiscoveryRegistry, type Hub, type HubOptions, silentLogger } from '../src/index'

const cleanups: Array<() => Promise<void> | void> = []

afterEach(async () => {
  while (cleanups.length) await cleanups.pop()?.()
})

export function tempDir(prefix = 'sllm-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** A started hub on a fresh data dir (a real SQLite file), stopped after the test. */
export async function startHub(opts: HubOptions = {}): Promise<Hub> {
  // Subsystems that touch the machine (probe loop, Ollama process, mDNS) are off unless a test asks.
  const hub = createHub({
    providers: false,
    ollama: false,
    discovery: false,
    ...opts,
    dataDir: opts.dataDir ?? tempDir(),
  })
  await hub.start()
  cleanups.push(() => hub.stop())
  return hub
}

/** Collects every event the hub emits. */
export function recordEvents(hub: Hub): Array<{ type: string; payload: unknown }> {
  const seen: Array<{ type: string; payload: unknown }> = []
  hub.bus.onAny((type, payload) => seen.push({ type, payload }))
  return seen
}

/** A snapshot of every table the domain writes, to prove a rejected call changed nothing. */
export async function dbState(hub: Hub): Promise<string> {
  const tables = ['roles', 'devices', 'allocation_history', 'settings', 'audit_log']
  const out: Record<string, unknown> = {}
  for (const t of tables)
    out[t] = await hub
      .db(t)
      .select()
      .orderBy(t === 'settings' ? 'key' : 'id')
  return JSON.stringify(out)
}

/** A discovery registry over a started hub, to feed it sightings the way the mDNS browser does. */
export function registryFor(hub: Hub, instanceId: string, newEntriesPerMinute = 10): DiscoveryRegistry {
  return new DiscoveryRegistry({
    bus: hub.bus,
    log: silentLogger,
    db: () => hub.db,
    devices: hub.devices,
    settings: hub.settings,
    instanceId,
    newEntriesPerMinute,
  })
}

import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createHub, type Hub, type HubOptions, silentLogger } from '@sharedllm/core'
import { createRamProvider } from '@sharedllm/provider-ram'
import { type AppOptions, createApp, type SharedLLMApp } from '../src/app'

export const ADMIN_SECRET = 'test-admin-secret-0123456789'
export const ADMIN = { Authorization: `Bearer ${ADMIN_SECRET}` }
export const ASSET = 'assets/index-AbCdEf12.js'

export interface Harness {
  hub: Hub
  app: SharedLLMApp
  dir: string
  pwaDir: string
  cleanup(): Promise<void>
}

/** A small built-PWA lookalike, so static serving is tested without depending on a vite build. */
export async function writePwa(dir: string): Promise<void> {
  await mkdir(join(dir, 'assets'), { recursive: true })
  await writeFile(join(dir, 'index.html'), '<!doctype html><title>sharedLLM</title><div id="app"></div>')
  await writeFile(join(dir, 'sw.js'), 'self.addEventListener("fetch", () => {})')
  await writeFile(join(dir, 'manifest.webmanifest'), '{"name":"sharedLLM"}')
  await writeFile(join(dir, ASSET), 'console.log(1)')
}

/** A real hub on a real SQLite file in a temp dir, with the admin secret set, and its app. */
export async function setup(
  opts: { app?: AppOptions; hub?: HubOptions; pwa?: boolean } = {},
): Promise<Harness> {
  const dir = await mkdtemp(join(tmpdir(), 'sllm-server-'))
  const pwaDir = join(dir, 'pwa')
  if (opts.pwa !== false) await writePwa(pwaDir)
  // The real RAM provider on this machine; no Ollama process and no mDNS unless a test asks for them.
  const hub = createHub({
    dataDir: join(dir, 'data'),
    logger: silentLogger,
    capacityMb: () => 65536,
    providers: [createRamProvider()],
    ollama: false,
    discovery: false,
    ...opts.hub,
  })
  await hub.start()
  await hub.admin.ensureSecret(ADMIN_SECRET)
  const app = createApp(hub, { pwaDir, ...opts.app })
  return {
    hub,
    app,
    dir,
    pwaDir,
    async cleanup() {
      await app.ws.close()
      await hub.stop()
      await rm(dir, { recursive: true, force: true })
    },
  }
}

/** A device that joined and was approved, with its claimed key. */
export async function approvedDevice(hub: Hub, name = 'phone', roleId = 'role-user') {
  const joined = await hub.access.join({ name }, '192.168.1.50')
  await hub.devices.approve(joined.device_id, roleId)
  const claim = await hub.access.claim(joined.request_id, joined.claim_secret, '192.168.1.50')
  return { deviceId: joined.device_id, key: claim.device_key! }
}

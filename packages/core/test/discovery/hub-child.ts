// A hub with mDNS discovery in its own process, for the namespace tests:
// `ip netns exec <ns> node --import tsx hub-child.ts`. Configured by env (SLLM_*), driven by JSON lines on
// stdin ({id, cmd, args}); writes JSON lines to stdout: ready, every device/peer event, and replies.
import { createInterface } from 'node:readline'
import { createHub, Discovery, getInstanceId, type SettingKey, silentLogger } from '../../src/index'
import { type SpoofedAdvert, sendSpoofedAdverts } from './spoof'

const env = (k: string, d: string) => process.env[k] ?? d
const write = (msg: unknown) => process.stdout.write(`${JSON.stringify(msg)}\n`)

// The hub's own discovery is off: this script runs one with short test intervals instead.
const hub = createHub({
  dataDir: env('SLLM_DATA_DIR', ''),
  logger: silentLogger,
  discovery: false,
  providers: false,
  ollama: false,
})
await hub.start()
for (const [k, v] of Object.entries(JSON.parse(env('SLLM_SETTINGS', '{}')) as Record<string, unknown>)) {
  await hub.settings.set(k, v)
}
const instanceId = await getInstanceId(hub.db)
const discovery = new Discovery({
  bus: hub.bus,
  log: silentLogger,
  db: () => hub.db,
  devices: hub.devices,
  settings: hub.settings,
  instanceId,
  version: '0.1.0',
  apiPort: () => Number(env('SLLM_PORT', '18080')),
  name: () => env('SLLM_NAME', 'child'),
  queryIntervalMs: Number(env('SLLM_QUERY_MS', '1000')),
  expireAfterMs: Number(env('SLLM_EXPIRE_MS', '4000')),
  newEntriesPerMinute: Number(env('SLLM_NEW_PER_MIN', '10')),
})
hub.bus.onAny((event, payload) => {
  if (event.startsWith('device_') || event.startsWith('peer_') || event === 'discovery_error') {
    write({ type: 'event', event, payload })
  }
})

let stopping = false
async function shutdown(code = 0) {
  if (stopping) return
  stopping = true
  await discovery.stop()
  await hub.stop()
  process.exit(code)
}
process.on('SIGTERM', () => void shutdown(0))

const commands: Record<string, (args: Record<string, unknown>) => Promise<unknown>> = {
  devices: () => hub.devices.list(),
  peers: async () =>
    (await hub.db('peers').select()).map((p) => ({ ...p, addresses: JSON.parse(p.addresses) })),
  set: (a) => hub.settings.set(a.key as SettingKey, a.value),
  approve: (a) => hub.devices.approve(String(a.id), String(a.role)),
  deny: (a) => hub.devices.deny(String(a.id)),
  audit: (a) => hub.auditLog({ target: String(a.target) }),
  running: async () => discovery.running,
  spoof: async (a) => sendSpoofedAdverts(a.adverts as SpoofedAdvert[]),
  stop: async () => {
    setImmediate(() => void shutdown(0))
    return true
  },
}

createInterface({ input: process.stdin }).on('line', (line) => {
  const { id, cmd, args } = JSON.parse(line) as { id: number; cmd: string; args?: Record<string, unknown> }
  const fn = commands[cmd]
  if (!fn) return write({ type: 'reply', id, error: `unknown command ${cmd}` })
  fn(args ?? {}).then(
    (result) => write({ type: 'reply', id, result }),
    (err: Error) => write({ type: 'reply', id, error: err.message }),
  )
})

await discovery.start()
write({ type: 'ready', instance_id: instanceId })

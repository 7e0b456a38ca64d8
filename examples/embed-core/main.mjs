#!/usr/bin/env node
// sharedLLM's core embedded in a plain Node program: no HTTP server, no Express.
// It opens a hub on a data dir, listens to events, approves a device in code, and prints memory stats.
//
//   node main.mjs [data-dir]
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createHub } from '@sharedllm/core'

const dataDir = process.argv[2] ?? mkdtempSync(join(tmpdir(), 'sharedllm-embed-'))

const hub = createHub({
  dataDir,
  // This example does not manage an Ollama process or talk mDNS; the probe loop runs with whatever
  // provider packages are installed next to it (here @sharedllm/provider-ram).
  ollama: false,
  discovery: false,
  providerResolveFrom: [import.meta.url],
})

hub.on('device_pending_approval', ({ device }) => console.log(`event: ${device.name} asks to join`))
hub.on('device_approved', ({ device }) =>
  console.log(`event: ${device.name} approved with ${device.allocation_mb} MiB`),
)

await hub.start()
try {
  const stats = hub.memory?.latest()
  for (const d of stats?.devices ?? []) {
    const gib = (b) => (b / 2 ** 30).toFixed(1)
    console.log(`memory: ${d.id} ${d.kind} ${gib(d.usedBytes)} / ${gib(d.totalBytes)} GiB used`)
  }
  console.log(`capacity for devices: ${hub.capacityMb()} MiB`)

  const phone = await hub.devices.add({ name: 'Kitchen tablet', ip: '192.168.1.42' })
  const approved = await hub.devices.approve(phone.id, 'role-guest', 'embed-example')
  console.log(`device: ${approved.name} is ${approved.status} as ${approved.role_id}`)

  // Rejected input is a SharedLLMError with a code and a message naming the field; nothing changes.
  try {
    await hub.devices.setAllocation(phone.id, 999_999)
  } catch (err) {
    console.log(`refused: ${err.code} ${err.message}`)
  }
} finally {
  await hub.stop()
}

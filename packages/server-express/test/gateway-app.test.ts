import { once } from 'node:events'
import { mkdtemp, rm } from 'node:fs/promises'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createHub, type Hub, silentLogger } from '@sharedllm/core'
import { type FakeOllama, startFakeOllama } from '@sharedllm/core/testing'
import { Ollama } from 'ollama'
import OpenAI from 'openai'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { createApp } from '../src/app'
import { writePwa } from './helpers'

const ADMIN_SECRET = 'gateway-admin-secret-0123456789'
// biome-ignore lint/suspicious/noExplicitAny: test-side view of arbitrary JSON answers
type Json = any

// The whole path through the real app: a device joins through the API, the owner approves it, the device
// claims its key, and the official clients stream a chat through the gateway; its usage shows in /api/me
// and /api/usage.
let hub: Hub
let fake: FakeOllama
let server: Server
let url: string
let dir: string

beforeAll(async () => {
  fake = await startFakeOllama({ chunks: 4 })
  dir = await mkdtemp(join(tmpdir(), 'sllm-gateway-app-'))
  await writePwa(join(dir, 'pwa'))
  hub = createHub({
    dataDir: join(dir, 'data'),
    logger: silentLogger,
    capacityMb: () => 65536,
    freeMb: () => 2048,
    providers: false,
    discovery: false,
    ollama: false,
  })
  await hub.start()
  // Sized for round one's 4096 MiB user role (the model lists below depend on it); the built-in is 8192 now.
  await hub.roles.update('role-user', { max_memory_mb: 4096 })
  await hub.settings.set('ollama_host', fake.url)
  await hub.admin.ensureSecret(ADMIN_SECRET)
  const app = createApp(hub, { pwaDir: join(dir, 'pwa') })
  server = createServer(app)
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
})
afterAll(async () => {
  server?.closeAllConnections()
  await new Promise((r) => server?.close(r))
  await hub?.stop()
  await fake?.stop()
  if (dir) await rm(dir, { recursive: true, force: true })
})

const admin = { Authorization: `Bearer ${ADMIN_SECRET}`, 'content-type': 'application/json' }

it('join → approve → claim → the ollama and openai clients stream through the gateway', async () => {
  const joined: Json = await (
    await fetch(`${url}/api/join`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'dev-laptop', platform: 'linux' }),
    })
  ).json()
  expect(joined.status).toBe('pending')
  const poll = () =>
    fetch(`${url}/api/join/${joined.request_id}`, { headers: { 'X-Claim-Secret': joined.claim_secret } })
  expect(((await (await poll()).json()) as Json).device_key).toBeUndefined()

  // Pending devices cannot use the gateway.
  expect((await fetch(`${url}/v1/models`)).status).toBe(401)

  const approved = await fetch(`${url}/api/devices/${joined.device_id}/approve`, {
    method: 'POST',
    headers: admin,
    body: JSON.stringify({ role_id: 'role-user' }),
  })
  expect(approved.status).toBe(200)
  const { device_key: key }: Json = await (await poll()).json()
  expect(key).toMatch(/^sllm_/)

  const ollama = new Ollama({ host: `${url}/ollama`, headers: { Authorization: `Bearer ${key}` } })
  const names = (await ollama.list()).models.map((m) => m.name)
  expect(names).toContain('qwen3:1.7b')
  expect(names).not.toContain('qwen2.5vl:7b')
  let text = ''
  for await (const part of await ollama.chat({
    model: 'qwen3:1.7b',
    messages: [{ role: 'user', content: 'ping' }],
    stream: true,
  })) {
    text += part.message.content
  }
  expect(text).toBe('Echo: ping Echo: ping')

  const openai = new OpenAI({ baseURL: `${url}/v1`, apiKey: key, maxRetries: 0 })
  expect((await openai.models.list()).data.map((m) => m.id)).toContain('qwen3:1.7b')
  let reply = ''
  for await (const chunk of await openai.chat.completions.create({
    model: 'qwen3:1.7b',
    messages: [{ role: 'user', content: 'pong' }],
    stream: true,
  })) {
    reply += chunk.choices[0]?.delta.content ?? ''
  }
  expect(reply).toBe('Echo: pong Echo: pong')

  // Usage: per device in /api/me, per device and model in /api/usage.
  await expect
    .poll(
      async () =>
        (
          (await (
            await fetch(`${url}/api/me`, { headers: { Authorization: `Bearer ${key}` } })
          ).json()) as Json
        ).usage,
    )
    .toMatchObject({ requests: 2, completion_tokens: 8 })
  // Can it load now: the model just used is in memory; a 7 GB one does not fit 2 GiB free plus the idle one.
  const me: Json = await (
    await fetch(`${url}/api/me`, { headers: { Authorization: `Bearer ${key}` } })
  ).json()
  const loadOf = (name: string) => (me.models as Json[]).find((m) => m.name === name)?.load
  expect(loadOf('qwen3:1.7b')).toBe('loaded')
  expect(loadOf('gemma3n:e4b')).toBe('busy')
  expect(loadOf('deepseek-r1:1.5b')).toBe('free')
  const usage: Json = await (await fetch(`${url}/api/usage`, { headers: admin })).json()
  expect(usage.by_device_model).toEqual(
    expect.arrayContaining([expect.objectContaining({ device_id: joined.device_id, model: 'qwen3:1.7b' })]),
  )

  // Revoked through the API: the same key is refused at once.
  await fetch(`${url}/api/devices/${joined.device_id}/revoke`, { method: 'POST', headers: admin })
  await expect(ollama.list()).rejects.toMatchObject({ status_code: 401 })
})

import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { type FakeOllama, startFakeOllama } from '@sharedllm/core/testing'
import { Ollama } from 'ollama'
import { afterAll, beforeAll, expect, test } from 'vitest'

// The example serves the gateway with node:http alone; the official ollama client streams a chat through
// it with the device key, against the stand-in Ollama (a real process).
const script = fileURLToPath(new URL('../gateway.mjs', import.meta.url))
const dataDir = mkdtempSync(join(tmpdir(), 'embed-gateway-test-'))
let fake: FakeOllama
let child: ReturnType<typeof spawn>
let info: { ollama: string; key: string }

beforeAll(async () => {
  fake = await startFakeOllama({ chunks: 3 })
  child = spawn(process.execPath, [script, '0', dataDir], {
    env: { ...process.env, OLLAMA_HOST: fake.url },
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  const line = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).once('line', resolve)
    child.once('exit', (code) => reject(new Error(`gateway.mjs exited with ${code}`)))
  })
  info = JSON.parse(line)
}, 30_000)
afterAll(async () => {
  child?.kill('SIGTERM')
  await fake?.stop()
  rmSync(dataDir, { recursive: true, force: true })
})

test('the official ollama client lists and streams a chat through the gateway served by node:http alone', async () => {
  const ollama = new Ollama({ host: info.ollama, headers: { Authorization: `Bearer ${info.key}` } })
  expect((await ollama.list()).models.map((m) => m.name)).toContain('qwen3:1.7b')
  let text = ''
  for await (const part of await ollama.chat({
    model: 'qwen3:1.7b',
    messages: [{ role: 'user', content: 'hi there' }],
    stream: true,
  })) {
    text += part.message.content
  }
  expect(text).toBe('Echo: hi there')
  const stranger = new Ollama({ host: info.ollama })
  await expect(stranger.list()).rejects.toMatchObject({ status_code: 401 })
})

import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { type FakeOllama, startFakeOllama } from '@sharedllm/core/testing'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { approvedDevice } from './helpers'
import { type HttpsHarness, startHttps } from './https-helpers'

const run = promisify(execFile)
const packageDir = fileURLToPath(new URL('..', import.meta.url))

// What a user runs: the official clients in a plain `node`, trusting the host CA via NODE_EXTRA_CA_CERTS.
// Bare imports of `-e` ESM code resolve from the cwd, so this package's ollama and openai are used.
const CLIENTS = `
import { Ollama } from 'ollama'
import OpenAI from 'openai'
const { SLLM_BASE: base, SLLM_KEY: key } = process.env
const out = {}
try {
  const ollama = new Ollama({ host: base + '/ollama', headers: { Authorization: 'Bearer ' + key } })
  out.ollamaModels = (await ollama.list()).models.map((m) => m.name)
  const parts = []
  for await (const p of await ollama.chat({ model: 'qwen3:1.7b', messages: [{ role: 'user', content: 'hi over tls' }], stream: true })) {
    if (!p.done) parts.push(p.message.content)
  }
  out.ollamaChat = parts.join('')
  const openai = new OpenAI({ baseURL: base + '/v1', apiKey: key, maxRetries: 0 })
  out.openaiModels = (await openai.models.list()).data.map((m) => m.id)
  const done = await openai.chat.completions.create({ model: 'qwen3:1.7b', messages: [{ role: 'user', content: 'one two' }] })
  out.openaiChat = done.choices[0].message.content
} catch (err) {
  out.error = String(err?.cause?.code ?? err?.code ?? err?.message ?? err)
}
console.log(JSON.stringify(out))
`

function clients(base: string, key: string, caFile?: string) {
  const env: NodeJS.ProcessEnv = { ...process.env, SLLM_BASE: base, SLLM_KEY: key }
  delete env.NODE_EXTRA_CA_CERTS
  if (caFile) env.NODE_EXTRA_CA_CERTS = caFile
  return run(process.execPath, ['--input-type=module', '-e', CLIENTS], {
    cwd: packageDir,
    env,
    timeout: 30_000,
  }).then(({ stdout }) => JSON.parse(stdout.trim().split('\n').at(-1)!) as Record<string, unknown>)
}

describe('clients talk to the gateway over HTTPS with the host CA', () => {
  let fake: FakeOllama
  let h: HttpsHarness
  let key: string
  let caFile: string

  beforeAll(async () => {
    fake = await startFakeOllama({ chunks: 3 })
    h = await startHttps({ hub: { settings: { auto_start_ollama: false, ollama_host: fake.url } } })
    ;({ key } = await approvedDevice(h.hub, 'tls-laptop'))
    caFile = join(h.dir, 'downloaded-ca.crt')
    // Downloaded the way a user would: from the host's own /ca.crt.
    await writeFile(caFile, await (await fetch(`${h.httpUrl}/ca.crt`)).text())
  })
  afterAll(async () => {
    await h?.cleanup()
    await fake?.stop()
  })

  it('the official ollama and openai npm clients, with NODE_EXTRA_CA_CERTS', async () => {
    const out = await clients(h.httpsUrl, key, caFile)
    expect(out.error).toBeUndefined()
    expect(out.ollamaModels).toContain('qwen3:1.7b')
    expect(out.ollamaChat).toMatch(/^Echo: hi over/)
    expect(out.openaiModels).toContain('qwen3:1.7b')
    expect(out.openaiChat).toMatch(/^Echo: one/)
    // It really went through the gateway to Ollama.
    const paths = (await fake.requests()).map((r) => r.path)
    expect(paths).toContain('/api/chat')
  })

  it('the same clients without the CA refuse the host', async () => {
    const out = await clients(h.httpsUrl, key)
    expect(String(out.error)).toMatch(
      /SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_VERIFY_LEAF_SIGNATURE|certificate/i,
    )
  })

  it.skipIf(!existsSync('/usr/bin/curl'))(
    'curl --cacert reaches /healthz; curl without it is refused',
    async () => {
      const ok = await run('curl', ['-sS', '--cacert', caFile, `${h.httpsUrl}/healthz`], { timeout: 10_000 })
      expect(JSON.parse(ok.stdout)).toMatchObject({ ok: true })
      const gw = await run(
        'curl',
        ['-sS', '--cacert', caFile, '-H', `Authorization: Bearer ${key}`, `${h.httpsUrl}/v1/models`],
        { timeout: 10_000 },
      )
      expect(JSON.parse(gw.stdout).data.map((m: { id: string }) => m.id)).toContain('qwen3:1.7b')
      // 60: peer certificate cannot be authenticated with known CA certificates.
      await expect(run('curl', ['-sS', `${h.httpsUrl}/healthz`], { timeout: 10_000 })).rejects.toMatchObject({
        code: 60,
      })
    },
  )
})

import { randomBytes } from 'node:crypto'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { openStore } from '@sharedllm/core'
import { type FakeOllama, startFakeOllama } from '@sharedllm/core/testing'
import { type Browser, chromium, type Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  axeLine,
  axeScan,
  DESKTOP,
  CHROMIUM_ARGS,
  ensureScreenshotDir,
  findChromium,
  missingPrerequisites,
  repoRoot,
  type RunningServer,
  startServer,
} from './harness'

// The owner's Pool page with two real hosts on this machine, each with its own stand-in Ollama: A (the 16
// captured models) joins B (those and llama3.2:3b) from the page, B's owner approves A, and A's page then
// shows B, its memory and breaker, and that llama3.2:3b lives on B (and whether it is loaded). mDNS does not
// work on loopback, so the test writes B's advert into A's database as A's discovery would (a `discovered`
// peer row); everything after it (pinning B's CA, the join, the claim, the HTTPS status polls) is the real one.

const missing = missingPrerequisites()
const PEER = 'gaming-pc'

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number }
      s.close(() => resolve(port))
    })
  })
}

describe.skipIf(missing.length > 0)('the Pool page (real Chromium, two real hosts, stand-in Ollamas)', () => {
  let ollamaA: FakeOllama
  let ollamaB: FakeOllama
  let a: RunningServer
  let b: RunningServer
  let browser: Browser
  let page: Page
  const secret = randomBytes(24).toString('hex')
  ensureScreenshotDir()
  const findings: string[] = []

  async function asAdmin<T>(server: RunningServer, method: string, path: string, body?: unknown): Promise<T> {
    const res = await fetch(`${server.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${secret}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    })
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`)
    return (await res.json()) as T
  }

  /** axe-core (no critical or serious violation) in light and dark, desktop and phone; no sideways scroll. */
  async function axe(name: string) {
    findings.push(...(await axeScan(page, name, { prefix: 'pool' })).map(axeLine))
    await page.setViewportSize(DESKTOP)
  }

  beforeAll(async () => {
    ollamaA = await startFakeOllama({})
    ollamaB = await startFakeOllama({ extraModels: ['llama3.2:3b'] })
    // Pooling speaks to a peer only over HTTPS with its pinned CA: B serves HTTPS on a port of its own.
    b = await startServer({
      ollamaUrl: ollamaB.url,
      adminSecret: secret,
      args: ['--https-port', String(await freePort())],
    })
    a = await startServer({ ollamaUrl: ollamaA.url, adminSecret: secret, args: ['--no-https'] })
    browser = await chromium.launch({ executablePath: findChromium()!, args: CHROMIUM_ARGS })
    const ctx = await browser.newContext({ viewport: DESKTOP, colorScheme: 'light', bypassCSP: true })
    page = await ctx.newPage()
    await page.goto(`${a.url}/login`)
    await page.fill('[data-field="secret"] input', secret)
    await page.click('[data-action="login"]')
    await page.waitForURL(`${a.url}/admin`)
  })

  afterAll(async () => {
    await browser?.close()
    await a?.stop()
    await b?.stop()
    await ollamaA?.stop()
    await ollamaB?.stop()
  })

  it('with no paired host the page says how to pair one; a host found on the network can be joined from it', async () => {
    await page.click('a[href="/admin/pool"]')
    await page.waitForSelector('[data-pool-empty]')
    expect(await page.locator('[data-pool-host]').count()).toBe(1)
    expect(await page.textContent('[data-routing]')).toMatch(/^Local first/)

    // B's advert as A's discovery records it (what mDNS would find on a LAN).
    const storeB = await openStore(b.dataDir)
    const instance = (await storeB.knex('instance_meta').where({ key: 'instance_id' }).first())
      .value as string
    await storeB.close()
    const storeA = await openStore(a.dataDir)
    const now = Date.now()
    await storeA.knex('peers').insert({
      id: 'peer-gaming-pc',
      instance_id: instance,
      name: PEER,
      addresses: JSON.stringify(['127.0.0.1']),
      port: b.port,
      version: '0.1.0',
      last_seen: now,
      online: true,
      status: 'discovered',
      created_at: now,
      updated_at: now,
    })
    await storeA.close()

    await page.reload()
    const row = page.locator(`[data-peer="${PEER}"]`)
    await row.waitFor()
    expect(await row.textContent()).toContain('Found on the network; not joined')
    await row.locator('[data-action="join-peer"]').click()
    await page.waitForFunction(
      (name) =>
        document.querySelector(`[data-peer="${name}"]`)?.textContent?.includes('Waiting for its owner'),
      PEER,
      { timeout: 10_000 },
    )

    // B's owner approves A (a pending device that is a sharedLLM host).
    const { devices } = await asAdmin<{
      devices: Array<{ id: string; status: string; instance_id: string | null }>
    }>(b, 'GET', '/api/devices')
    const hostA = devices.find((d) => d.status === 'pending' && d.instance_id)
    expect(hostA).toBeTruthy()
    await asAdmin(b, 'POST', `/api/devices/${hostA!.id}/approve`, { role_id: 'role-user' })
  })

  it('shows the peer (up, version, memory, latency, breaker) and that a model only it has lives there, loaded or not', async () => {
    const card = page.locator(`[data-pool-host="${PEER}"][data-up="yes"]`)
    await card.waitFor({ timeout: 20_000 })
    expect(await page.locator('[data-pool-empty]').count()).toBe(0)
    expect(await card.locator('[data-field="breaker"]').textContent()).toContain('Answering')
    expect(await card.locator('[data-field="latency"]').textContent()).toMatch(/\d ms/)
    expect(await card.locator('[data-field="version"]').textContent()).toMatch(/^\d+\.\d+\.\d+/)

    const only = page.locator('[data-pool-model="llama3.2:3b"]')
    await only.waitFor()
    expect(
      await only
        .locator('[data-model-host]')
        .evaluateAll((els) => els.map((e) => e.getAttribute('data-model-host'))),
    ).toEqual([PEER])
    expect(await only.locator(`[data-model-host="${PEER}"]`).getAttribute('data-loaded')).toBe('no')
    // A model both have lists both hosts.
    expect(await page.locator('[data-pool-model="qwen3:1.7b"] [data-model-host]').count()).toBe(2)

    // Loaded on B: the page follows within a poll or two.
    await fetch(`${ollamaB.url}/api/generate`, {
      method: 'POST',
      body: JSON.stringify({ model: 'llama3.2:3b' }),
    })
    await page.waitForSelector(
      `[data-pool-model="llama3.2:3b"] [data-model-host="${PEER}"][data-loaded="yes"]`,
      {
        timeout: 15_000,
      },
    )
    // The whole page in one viewport: a full-page capture would paint the sticky header mid-page.
    const height = await page.evaluate(() => document.documentElement.scrollHeight)
    await page.setViewportSize({ width: DESKTOP.width, height })
    await page.screenshot({ path: join(repoRoot, 'docs', 'pool.png') })
    await page.setViewportSize(DESKTOP)
    await axe('with-peer')
    expect(findings).toEqual([])
  })

  it('the dashboard shows the peer; when it stops answering, it says down and why', async () => {
    await page.click('a[href="/admin"]')
    const peer = page.locator(`[data-dashboard-peer="${PEER}"]`)
    await peer.waitFor()
    expect(await peer.textContent()).toContain('up')
    await b.stop()
    // Two missed status polls (3 s apart) mark it down; the owner's socket hears it at once.
    await page.waitForSelector(`[data-dashboard-peer="${PEER}"] [data-field="failure"]`, { timeout: 20_000 })
    expect(await peer.textContent()).toContain('down')
    const why = (await peer.locator('[data-field="failure"]').textContent())?.trim() ?? ''
    expect(why).toMatch(/^cannot reach https:\/\/127\.0\.0\.1:\d+: ECONNREFUSED/)
    await page.click('a[href="/admin/pool"]')
    const card = page.locator(`[data-pool-host="${PEER}"][data-up="no"]`)
    await card.waitFor()
    expect(await card.locator('[data-field="last-error"]').textContent()).toContain(why)
  })
})

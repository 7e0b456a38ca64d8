import { randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { type FakeOllama, startFakeOllama } from '@sharedllm/core/testing'
import {
  type Browser,
  type BrowserContext,
  chromium,
  devices as playwrightDevices,
  type Page,
} from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  CHROMIUM_ARGS,
  ensureScreenshotDir,
  findChromium,
  missingPrerequisites,
  type RunningServer,
  startServer,
} from './harness'

const missing = missingPrerequisites()
if (missing.length > 0) {
  const bar = '!'.repeat(78)
  console.warn(
    `\n${bar}\n!! PWA END-TO-END SUITE SKIPPED:\n${missing.map((m) => `!!   - ${m}`).join('\n')}\n${bar}\n`,
  )
}

const PHONE = { ...playwrightDevices['Pixel 5'], viewport: { width: 360, height: 740 } }
const DESKTOP = { width: 1280, height: 800 }

describe.skipIf(missing.length > 0)('PWA end to end (real Chromium, real server, fake Ollama)', () => {
  let ollama: FakeOllama
  let server: RunningServer
  let browser: Browser
  let adminCtx: BrowserContext
  let phoneCtx: BrowserContext
  let admin: Page
  let phone: Page
  const secret = randomBytes(24).toString('hex')
  const shots = ensureScreenshotDir()

  /** Each page at both sizes: desktop and a 360 px phone. */
  async function capture(page: Page, name: string) {
    const size = page.viewportSize()
    await page.setViewportSize(DESKTOP)
    await page.waitForTimeout(150)
    await page.screenshot({ path: join(shots, `${name}-desktop.png`), fullPage: true })
    await page.setViewportSize({ width: 360, height: 740 })
    await page.waitForTimeout(150)
    await page.screenshot({ path: join(shots, `${name}-phone.png`), fullPage: true })
    // Usable at 360 px: nothing pushes the page wider than the screen.
    expect(
      await page.evaluate(() => document.documentElement.scrollWidth),
      `${name} at 360 px`,
    ).toBeLessThanOrEqual(360)
    if (size) await page.setViewportSize(size)
  }

  beforeAll(async () => {
    ollama = await startFakeOllama({ chunkDelayMs: 20 })
    server = await startServer({ ollamaUrl: ollama.url, adminSecret: secret })
    browser = await chromium.launch({ executablePath: findChromium()!, args: CHROMIUM_ARGS })
    adminCtx = await browser.newContext({ viewport: DESKTOP, colorScheme: 'light' })
    phoneCtx = await browser.newContext({ ...PHONE, colorScheme: 'dark' })
    admin = await adminCtx.newPage()
    phone = await phoneCtx.newPage()
  })

  afterAll(async () => {
    await browser?.close()
    await server?.stop()
    await ollama?.stop()
  })

  it('the admin logs in and sees the live dashboard', async () => {
    await admin.goto(`${server.url}/login`)
    await admin.fill('[data-field="secret"] input', secret)
    await admin.click('[data-action="login"]')
    await admin.waitForURL(`${server.url}/admin`)
    await admin.waitForSelector('[data-conn="open"]')
    await admin.waitForSelector('[data-bar="totals"]', { timeout: 15_000 })
    await capture(admin, 'admin-dashboard')
  })

  it('a phone requests access and waits', async () => {
    await phone.goto(server.url)
    // Without a key, `/` asks who this is; on a phone Request access comes first.
    await phone.waitForSelector('[data-choice="join"]')
    await phone.click('[data-choice="join"]')
    await phone.waitForURL(`${server.url}/join`)
    expect(await phone.inputValue('[data-field="name"] input')).toBe('Android phone (Chrome)')
    await capture(phone, 'device-join')
    await phone.click('[data-action="request"]')
    await phone.waitForSelector('[data-waiting]')
    await capture(phone, 'device-waiting')
  })

  it('the admin approves it from the toast with a role', async () => {
    const toast = admin.locator('[data-toast]')
    await toast.waitFor()
    expect(await toast.textContent()).toContain('Android phone (Chrome) asks to join')
    await admin.screenshot({ path: join(shots, 'admin-approval-toast-desktop.png') })
    await toast.locator('.n-base-selection').click()
    await admin.locator('.n-base-select-option', { hasText: 'user (8 GiB)' }).click()
    await toast.locator('[data-action="approve"]').click()
    await toast.waitFor({ state: 'detached' })
  })

  it('the phone turns into the app, shows its key once, and chats with a streamed answer', async () => {
    await phone.waitForURL(`${server.url}/app/access`, { timeout: 15_000 })
    const key = await phone.locator('[data-copy-text="device-key"]').textContent()
    expect(key).toMatch(/^\S{20,}$/)
    await phone.waitForSelector('[data-field="role"]:has-text("user")')
    await capture(phone, 'device-access')

    await phone.click('a[href="/app/chat"]')
    await phone.waitForURL(`${server.url}/app/chat`)
    await phone.waitForSelector('[data-verdict="fits"]')
    // Whether it can load now, from the host's real free memory (this machine's RAM).
    await phone.waitForSelector('.picker [data-load]')
    await phone.fill('[data-field="message"] textarea', 'Say hello')
    await phone.click('[data-action="send"]')
    // The stop button shows while the answer streams, and the send button comes back when it is done.
    await phone.waitForSelector('[data-action="send"]', { timeout: 30_000 })
    const answer = (await phone.locator('[data-turn="assistant"] .bubble').last().textContent())?.trim() ?? ''
    expect(answer.length).toBeGreaterThan(0)
    await capture(phone, 'device-chat')
    const chats = (await ollama.requests()).filter((r) => r.path === '/api/chat')
    expect(chats.length).toBeGreaterThan(0)
  })

  it('the admin sees the phone’s usage', async () => {
    await admin.click('a[href="/admin/devices"]')
    await admin.click('[data-tab="approved"]')
    const card = admin.locator('.device-card', { hasText: 'Android phone (Chrome)' })
    await expect
      .poll(async () => card.locator('[data-field="usage"]').textContent(), { timeout: 15_000 })
      .toMatch(/1 request/)
    await capture(admin, 'admin-devices')
  })

  it('every admin page renders at desktop and phone size', async () => {
    for (const [path, name, ready] of [
      ['/admin/models', 'admin-models', '[data-model]'],
      ['/admin/permissions', 'admin-permissions', '[data-role="role-guest"]'],
      ['/admin/settings', 'admin-settings', '[data-setting="host_reserve_mb"]'],
      ['/admin/audit', 'admin-audit', '[data-audit]'],
      ['/admin/add-device', 'admin-add-device', '[data-action="pair"]'],
    ] as const) {
      await admin.click(`a[href="${path}"]`)
      await admin.waitForSelector(ready, { timeout: 15_000 })
      if (name === 'admin-models') {
        // The model the phone just used is in memory; the running list is live.
        const used = (await ollama.requests()).find((r) => r.path === '/api/chat')?.body as { model?: string }
        await admin.waitForSelector(`[data-model="${used?.model}"] [data-load="loaded"]`, { timeout: 15_000 })
      }
      if (name === 'admin-add-device') {
        await admin.click('[data-action="pair"]')
        await admin.waitForSelector('[data-qr] svg')
      }
      await capture(admin, name)
    }
    await admin.click('a[href="/admin"]')
    await admin.waitForSelector('[data-bar="totals"]')
    await capture(admin, 'admin-dashboard-after')
  })

  it('an invalid setting shows the API’s message', async () => {
    await admin.click('a[href="/admin/settings"]')
    const row = admin.locator('[data-setting="host_reserve_mb"]')
    await row.locator('input').fill('-5')
    await row.locator('input').blur()
    await row.locator('[data-action="save"]').click()
    await expect
      .poll(async () =>
        row
          .locator('[role="alert"]')
          .textContent()
          .catch(() => ''),
      )
      .toMatch(/host_reserve_mb|negative|at least|must/i)
  })

  it('serves the manifest and activates the service worker', async () => {
    const res = await admin.request.get(`${server.url}/manifest.webmanifest`)
    expect(res.ok()).toBe(true)
    const manifest = await res.json()
    expect(manifest).toMatchObject({
      name: 'sharedLLM',
      display: 'standalone',
      start_url: '/',
      theme_color: '#0f766e',
    })
    const sizes = manifest.icons.map((i: { sizes: string; purpose: string }) => `${i.sizes}:${i.purpose}`)
    expect(sizes).toEqual(expect.arrayContaining(['192x192:any', '512x512:any', '512x512:maskable']))
    const state = await admin.evaluate(async () => {
      const reg = await navigator.serviceWorker.ready
      return reg.active?.state
    })
    expect(state).toBe('activated')
    // The service worker must leave the API alone: a fresh API call still reaches the server.
    const session = await admin.evaluate(async () => (await fetch('/api/auth/session')).status)
    expect(session).toBe(200)
    expect(existsSync(join(shots, 'admin-dashboard-desktop.png'))).toBe(true)
  })
})

import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { type FakeOllama, startFakeOllama } from '@sharedllm/core/testing'
import { type Browser, type BrowserContext, chromium, type Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  axeLine,
  axeScan,
  DESKTOP,
  PHONE,
  CHROMIUM_ARGS,
  ensureScreenshotDir,
  findChromium,
  missingPrerequisites,
  repoRoot,
  type RunningServer,
  startServer,
} from './harness'

// Issues 16 and 18 in the browser: a guest's chat shows its place in the fair-share queue while another
// device floods the one GPU slot (the stand-in with OLLAMA_NUM_PARALLEL=1 and slow chunks), its budget meter
// moves after a chat, the quota mark shows, and the budget refusal reads as plain words in the chat. The
// owner sees the queue live (names, not ids), the budget notice, edits the device's limits (a bad schedule
// is shown at its field) and the Usage page with its chart; axe-core on the new pages.

const missing = missingPrerequisites()
const docsDir = join(repoRoot, 'docs')

describe.skipIf(missing.length > 0)('queue position, budgets and usage (real Chromium, real server)', () => {
  let ollama: FakeOllama
  let server: RunningServer
  let browser: Browser
  let adminCtx: BrowserContext
  let tabletCtx: BrowserContext
  let admin: Page
  let tablet: Page
  const secret = randomBytes(24).toString('hex')
  const shots = ensureScreenshotDir()
  const findings: string[] = []
  let tabletId = ''
  let tabletKey = ''
  let model = ''
  const flood = new AbortController()
  const flooding: Promise<unknown>[] = []

  const url = (p: string) => `${server.url}${p}`
  async function asAdmin<T>(method: string, path: string, body?: unknown): Promise<T> {
    const res = await fetch(url(path), {
      method,
      headers: { authorization: `Bearer ${secret}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    })
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`)
    return (await res.json()) as T
  }
  /** A device made by the owner, approved as guest, with its key. */
  async function guest(name: string, ip: string) {
    const { device } = await asAdmin<{ device: { id: string } }>('POST', '/api/devices', { name, ip })
    await asAdmin('POST', `/api/devices/${device.id}/approve`, { role_id: 'role-guest' })
    const { device_key } = await asAdmin<{ device_key: string }>(
      'POST',
      `/api/devices/${device.id}/rotate-key`,
    )
    return { id: device.id, key: device_key }
  }

  async function axeAll(page: Page, name: string) {
    findings.push(...(await axeScan(page, name, { prefix: 'limits' })).map(axeLine))
  }

  beforeAll(async () => {
    // One request at a time per model, each answer ~3 s: a second device's requests must wait.
    ollama = await startFakeOllama({ chunkDelayMs: 100, chunks: 30, ollamaEnv: { OLLAMA_NUM_PARALLEL: '1' } })
    server = await startServer({ ollamaUrl: ollama.url, adminSecret: secret })
    browser = await chromium.launch({ executablePath: findChromium()!, args: CHROMIUM_ARGS })
    adminCtx = await browser.newContext({ viewport: DESKTOP, colorScheme: 'light', bypassCSP: true })
    tabletCtx = await browser.newContext({
      viewport: PHONE,
      colorScheme: 'light',
      bypassCSP: true,
      isMobile: true,
    })
    const tabletDev = await guest('Kids tablet', '192.168.1.31')
    tabletId = tabletDev.id
    tabletKey = tabletDev.key
    const me = await (
      await fetch(url('/api/me'), { headers: { authorization: `Bearer ${tabletDev.key}` } })
    ).json()
    model = (me.models as Array<{ name: string; verdict: string }>).find((m) => m.verdict === 'fits')!.name
    await asAdmin('PATCH', `/api/devices/${tabletId}/limits`, { token_budget_day: 100_000 })
    await tabletCtx.addInitScript(
      ([key, m]) => {
        localStorage.setItem('sharedllm.device_key', key!)
        localStorage.setItem('sharedllm.model.device', m!)
      },
      [tabletDev.key, model],
    )
    admin = await adminCtx.newPage()
    tablet = await tabletCtx.newPage()
    await admin.goto(url('/login'))
    await admin.fill('[data-field="secret"] input', secret)
    await admin.click('[data-action="login"]')
    await admin.waitForURL(url('/admin'))
  })

  afterAll(async () => {
    flood.abort()
    await Promise.allSettled(flooding)
    await browser?.close()
    await server?.stop()
    await ollama?.stop()
  })

  it('a guest’s chat shows its place in line while another device floods the GPU, cleared at the first token', async () => {
    const flooder = await guest('Homework laptop', '192.168.1.32')
    // The flooder keeps its running slot and its whole queue (guest: 1 running, 2 waiting) full.
    const one = async () => {
      while (!flood.signal.aborted) {
        try {
          const res = await fetch(url('/ollama/api/chat'), {
            method: 'POST',
            headers: { authorization: `Bearer ${flooder.key}`, 'content-type': 'application/json' },
            body: JSON.stringify({ model, messages: [{ role: 'user', content: 'flood '.repeat(50) }] }),
            signal: flood.signal,
          })
          await res.text()
          if (res.status === 429) await new Promise((r) => setTimeout(r, 200))
        } catch {
          // aborted at the end
        }
      }
    }
    for (let i = 0; i < 3; i++) flooding.push(one())
    // The owner's queue view shows the flooder by name, running and waiting.
    await admin.goto(url('/admin/queue'))
    await admin.locator('[data-queue-running]', { hasText: 'Homework laptop' }).waitFor({ timeout: 30_000 })

    // Once one answer has been timed the host has an ETA to give.
    await expect
      .poll(
        async () =>
          (await asAdmin<{ models: Array<{ service_s: number | null }> }>('GET', '/api/queue')).models.some(
            (m) => m.service_s !== null,
          ),
        { timeout: 30_000 },
      )
      .toBe(true)
    await tablet.goto(url('/app/chat'))
    await tablet.waitForSelector('.picker [data-verdict="fits"]')
    await tablet.waitForSelector('[data-quota="day"]')
    const before = await tablet.locator('[data-quota="day"] [data-remaining]').textContent()
    expect(before).toContain('100,000 of 100,000 tokens left')
    await tablet.fill('[data-field="message"] textarea', 'Is it my turn?')
    await tablet.click('[data-action="send"]')
    const place = tablet.locator('[data-queue-position]')
    await place.waitFor({ timeout: 30_000 })
    expect(await place.textContent()).toMatch(/^(Next|\d+(st|nd|rd|th)) in line, about \d+ (s|min)$/)
    await admin.locator('[data-queue-waiting]', { hasText: 'Kids tablet' }).waitFor({ timeout: 15_000 })
    await admin.screenshot({ path: join(shots, 'queue-view.png'), fullPage: true })
    await admin.screenshot({ path: join(docsDir, 'queue.png'), fullPage: true })
    await tablet.screenshot({ path: join(shots, 'chat-queue-position.png') })
    await tablet.screenshot({ path: join(docsDir, 'phone-queue.png') })
    // The first token clears it.
    const answer = tablet.locator('[data-turn="assistant"] .md').last()
    await expect
      .poll(async () => (await answer.textContent())?.length ?? 0, { timeout: 60_000 })
      .toBeGreaterThan(0)
    expect(await place.count()).toBe(0)
    await tablet.waitForSelector('[data-action="send"]', { timeout: 60_000 })
    flood.abort()
    await Promise.allSettled(flooding)
    await axeAll(admin, 'admin-queue')
    // Pause and resume a role from the keyboard.
    const guestRow = admin.locator('[data-queue-role="role-guest"]')
    await guestRow.locator('[data-action="pause-role"]').focus()
    await admin.keyboard.press('Enter')
    await guestRow.locator('[data-action="resume-role"]').waitFor()
    expect(await guestRow.textContent()).toContain('paused')
    expect(
      (await asAdmin<{ paused_roles: Array<{ role_id: string }> }>('GET', '/api/queue')).paused_roles,
    ).toEqual([{ role_id: 'role-guest', mode: 'wait' }])
    await guestRow.locator('[data-action="resume-role"]').click()
    await guestRow.locator('[data-action="pause-role"]').waitFor()
    expect((await asAdmin<{ paused_roles: unknown[] }>('GET', '/api/queue')).paused_roles).toEqual([])
  })

  it('the guest’s meter moves after a chat; past its budget the 100 % mark shows and the next chat is refused in plain words', async () => {
    const remaining = tablet.locator('[data-quota="day"] [data-remaining]')
    await expect
      .poll(async () => remaining.textContent(), { timeout: 15_000 })
      .not.toContain('100,000 of 100,000')
    // What the host counts (the recorder's buffered tokens included), once it has settled.
    const usedNow = async () => {
      const me = await (
        await fetch(url('/api/me'), { headers: { authorization: `Bearer ${tabletKey}` } })
      ).json()
      return (me.limits.quota as Array<{ window: string; used: number }>).find((q) => q.window === 'day')!
        .used
    }
    let used = -1
    await expect
      .poll(async () => {
        const [a, b] = [await usedNow(), await usedNow()]
        used = a
        return a === b && a > 0
      })
      .toBe(true)
    await expect
      .poll(async () => remaining.textContent())
      .toContain(`${(100_000 - used).toLocaleString('en')} of 100,000 tokens left`)
    // One more token of budget: the next chat is admitted, finishes, and crosses 100 %.
    await asAdmin('PATCH', `/api/devices/${tabletId}/limits`, { token_budget_day: used + 1 })
    await admin.goto(url('/admin'))
    await tablet.reload()
    await tablet.waitForSelector('[data-quota="day"]')
    await tablet.fill('[data-field="message"] textarea', 'One more?')
    await tablet.click('[data-action="send"]')
    await tablet.locator('[data-quota-notice="100"]').waitFor({ timeout: 60_000 })
    await tablet.waitForSelector('[data-action="send"]', { timeout: 60_000 })
    // The owner's dashboard notice names the device.
    await admin.locator('[data-budget-reached]', { hasText: 'Kids tablet' }).waitFor({ timeout: 15_000 })
    await axeAll(admin, 'admin-dashboard-budget')
    await tablet.fill('[data-field="message"] textarea', 'And another?')
    await tablet.click('[data-action="send"]')
    const refusal = tablet.locator('[data-refusal]').last()
    await refusal.waitFor({ timeout: 30_000 })
    expect(await refusal.textContent()).toMatch(
      /^You have used today’s [\d,]+ tokens\. You can chat again (tomorrow )?at \d\d:\d\d\.$/,
    )
    expect(await tablet.locator('[data-quota="day"] [data-remaining]').textContent()).toMatch(/^\s*0 of/)
    await tablet.screenshot({ path: join(shots, 'chat-budget-refusal.png') })
    await axeAll(tablet, 'device-chat-limits')
    await tablet.goto(url('/app/access'))
    await tablet.waitForSelector('[data-card="limits"] [data-quota="day"]')
    await tablet.waitForSelector('[data-usage-chart] canvas, [data-usage-empty]', { timeout: 20_000 })
    await axeAll(tablet, 'device-access')
  })

  it('the owner edits the device’s limits: a bad schedule is named at its field; one more hour; the role editor has the new fields', async () => {
    await admin.goto(url('/admin/devices'))
    await admin.click('[data-tab="approved"]')
    const card = admin.locator('.device-card', { hasText: 'Kids tablet' })
    await card.locator('[data-action="edit-limits"]').click()
    const form = admin.locator('[data-limits-form]')
    await form.waitFor()
    await form.locator('[data-field="hours"] textarea').fill('Mon-Fri 16:00-20:00\nMon 19:00-21:00')
    await form.locator('[data-action="save-limits"]').click()
    await form.locator('[data-field-error="allowed_hours"]').waitFor()
    expect(await form.locator('[data-field-error="allowed_hours"]').textContent()).toMatch(/overlap/i)
    await form.locator('[data-field="hours"] textarea').fill('Mon-Sun 00:00-00:01')
    await form.locator('[data-action="save-limits"]').click()
    await form.waitFor({ state: 'detached' })
    const device = await asAdmin<{ device: { allowed_hours: unknown } }>('GET', `/api/devices/${tabletId}`)
    expect(device.device.allowed_hours).toEqual([{ days: [0, 1, 2, 3, 4, 5, 6], from: '00:00', to: '00:01' }])
    // The card sums up the device's own day budget (not its role's) and its own hours.
    await expect
      .poll(() => card.locator('[data-limits-summary]').textContent())
      .toMatch(/^\d{1,3}(,\d{3})* tokens\/day · [^(]+$/)
    await card.locator('[data-action="grant-hour"]').click()
    await card.locator('[data-granted-until]').waitFor()
    await axeAll(admin, 'admin-devices-limits')

    await admin.goto(url('/admin/permissions'))
    await admin.locator('[data-action="edit"]').first().click()
    for (const f of ['share_weight', 'max_queued', 'max_wait_s', 'token_budget_day', 'allowed_hours'])
      await admin.locator(`[data-field="${f}"]`).first().waitFor()
    await axeAll(admin, 'admin-role-editor')
  })

  it('the Usage page charts tokens per device and per model, with a table and the CSV of the view', async () => {
    await admin.goto(url('/admin/usage'))
    await admin.waitForSelector('[data-usage-chart] canvas', { timeout: 20_000 })
    await admin.locator('[data-top-table] tr', { hasText: 'Kids tablet' }).waitFor()
    await admin.locator('[data-top-table] tr', { hasText: 'Homework laptop' }).waitFor()
    await admin.click('[data-group="model"]')
    await admin.locator('[data-top-table] tr', { hasText: model }).waitFor()
    const [download] = await Promise.all([
      admin.waitForEvent('download'),
      admin.click('[data-action="export-csv"]'),
    ])
    const path = await download.path()
    const csv = (await import('node:fs')).readFileSync(path, 'utf8')
    expect(csv.split('\n')[0]).toMatch(/model/)
    expect(csv).toContain(model)
    await admin.click('[data-group="device"]')
    await admin.waitForSelector('[data-usage-chart] canvas')
    // The range, group and metric switches are reachable and work from the keyboard.
    await admin.locator('[data-range="24h"]').focus()
    await admin.keyboard.press('Tab')
    expect(await admin.evaluate(() => document.activeElement?.getAttribute('data-range'))).toBe('7d')
    await admin.keyboard.press('Enter')
    await expect.poll(() => admin.locator('[data-range="7d"]').getAttribute('aria-pressed')).toBe('true')
    await admin.waitForSelector('[data-usage-chart] canvas')
    // Day buckets of the same week: the table's totals do not change with the bucket size.
    const tokensOf = async () =>
      admin.locator('[data-top-table] tbody tr').first().locator('td').nth(1).textContent()
    const hourly = await tokensOf()
    await admin.click('[data-bucket="day"]')
    await expect.poll(() => admin.locator('[data-bucket="day"]').getAttribute('aria-pressed')).toBe('true')
    await expect
      .poll(async () => admin.locator('[data-usage-panel] p.muted').first().textContent())
      .toContain('Per day')
    expect(await tokensOf()).toBe(hourly)
    await admin.click('[data-bucket="week"]')
    await expect
      .poll(async () => admin.locator('[data-usage-panel] p.muted').first().textContent())
      .toContain('Per week')
    expect(await tokensOf()).toBe(hourly)
    await admin.locator('[data-range="24h"]').click()
    await admin.waitForSelector('[data-usage-chart] canvas')
    // Queue wait: the devices' chats went through the fair-share queue, so p50/p95 are drawn (not the empty
    // state), with the CSV's per-device wait columns.
    await admin.click('[data-metric="wait"]')
    await admin.waitForSelector('[data-usage-chart][aria-label^="Queue wait p50 and p95"] canvas')
    expect(await admin.locator('[data-wait-empty]').count()).toBe(0)
    await admin.screenshot({ path: join(shots, 'usage-queue-wait.png'), fullPage: true })
    await axeAll(admin, 'admin-usage-wait')
    const [waitCsv] = await Promise.all([
      admin.waitForEvent('download'),
      admin.click('[data-action="export-csv"]'),
    ])
    const waitText = (await import('node:fs')).readFileSync(await waitCsv.path(), 'utf8')
    expect(waitText.split('\r\n')[0]).toMatch(/,queue_wait_p50_ms,queue_wait_p95_ms$/)
    const tabletLine = waitText.split('\r\n').find((l) => l.includes(',Kids tablet,'))
    expect(tabletLine?.split(',').slice(-2)).toEqual([
      expect.stringMatching(/^\d+$/),
      expect.stringMatching(/^\d+$/),
    ])
    await admin.click('[data-metric="tokens"]')
    await admin.waitForSelector('[data-usage-chart] canvas')
    await admin.screenshot({ path: join(shots, 'usage-page.png'), fullPage: true })
    await admin.screenshot({ path: join(docsDir, 'usage.png'), fullPage: true })
    await axeAll(admin, 'admin-usage')
    expect(findings, findings.join('\n')).toEqual([])
  })
})

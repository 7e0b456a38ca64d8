import { type ChildProcess, spawn } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Page } from 'playwright-core'
import { expect } from 'vitest'

export const repoRoot = fileURLToPath(new URL('../../../../', import.meta.url))
export const screenshotDir = join(repoRoot, 'test-artifacts', 'screenshots')
const cliDist = join(repoRoot, 'packages/server-express/dist/cli.js')
const cliSource = join(repoRoot, 'packages/server-express/src/cli.ts')
const pwaDist = join(repoRoot, 'packages/pwa/dist')

/** Chromium flags that work in this sandbox (see STACK.md). */
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
]

export function findChromium(): string | null {
  const candidates = [process.env.CHROMIUM_PATH, '/usr/bin/chromium', '/usr/bin/chromium-browser']
  return candidates.find((p): p is string => !!p && existsSync(p)) ?? null
}

/** The built CLI, unless it is the placeholder; else the TypeScript source run through tsx. */
function serverCommand(): { args: string[]; from: string } | null {
  if (existsSync(cliDist) && !readFileSync(cliDist, 'utf8').includes('not built yet')) {
    return { args: [cliDist], from: 'dist' }
  }
  if (existsSync(cliSource)) {
    return { args: ['--conditions=@sharedllm/source', '--import', 'tsx', cliSource], from: 'source' }
  }
  return null
}

/** Why the suite cannot run here (empty when it can). */
export function missingPrerequisites(): string[] {
  const missing: string[] = []
  if (!findChromium())
    missing.push('no Chromium at /usr/bin/chromium (CI: `apt-get install -y chromium`; or set CHROMIUM_PATH)')
  if (!serverCommand()) missing.push('the server CLI is missing (packages/server-express)')
  if (!existsSync(join(pwaDist, 'sw.js')))
    missing.push('the PWA is not built (run `pnpm build`; packages/pwa/dist/sw.js is missing)')
  return missing
}

export interface RunningServer {
  url: string
  port: number
  /** Its data directory (removed by `stop`). */
  dataDir: string
  output: () => string
  stop: () => Promise<void>
}

/** Starts the real sharedLLM server as a child process on a free port, with a temp data dir. */
export async function startServer(opts: {
  ollamaUrl: string
  adminSecret: string
  /** More CLI flags (e.g. `--https-port`). */
  args?: string[]
}): Promise<RunningServer> {
  const cmd = serverCommand()
  if (!cmd) throw new Error('no server CLI')
  const dataDir = mkdtempSync(join(tmpdir(), 'sharedllm-e2e-'))
  const child: ChildProcess = spawn(
    process.execPath,
    [
      ...cmd.args,
      '--port',
      '0',
      '--host',
      '127.0.0.1',
      '--data-dir',
      dataDir,
      '--ollama-host',
      opts.ollamaUrl,
      '--no-mdns',
      '--no-auto-start-ollama',
      ...(opts.args ?? []),
    ],
    {
      cwd: repoRoot,
      env: { ...process.env, SHAREDLLM_ADMIN_TOKEN: opts.adminSecret, SHAREDLLM_LOG_LEVEL: 'warn' },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  )
  let out = ''
  child.stdout!.setEncoding('utf8').on('data', (s: string) => (out += s))
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (out += s))
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start in 60 s:\n${out}`)), 60_000)
    const check = () => {
      const m = /listening on port (\d+)/.exec(out)
      if (m) {
        clearTimeout(timer)
        resolve(Number(m[1]))
      }
    }
    child.stdout!.on('data', check)
    child.once('exit', (code, signal) => {
      clearTimeout(timer)
      reject(new Error(`server exited (${code ?? signal}) before listening:\n${out}`))
    })
  })
  return {
    url: `http://localhost:${port}`,
    port,
    dataDir,
    output: () => out,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        const gone = new Promise((r) => child.once('exit', r))
        child.kill('SIGTERM')
        const hard = setTimeout(() => child.kill('SIGKILL'), 5000)
        await gone
        clearTimeout(hard)
      }
      rmSync(dataDir, { recursive: true, force: true })
    },
  }
}

export function ensureScreenshotDir() {
  mkdirSync(screenshotDir, { recursive: true })
  return screenshotDir
}

export const DESKTOP = { width: 1366, height: 800 }
export const PHONE = { width: 390, height: 844 }
const axePath = createRequire(import.meta.url).resolve('axe-core/axe.min.js')

/** A serious or critical axe-core violation on one page, in one colour scheme and size. */
export interface AxeFinding {
  page: string
  mode: string
  rule: string
  impact: string
  help: string
  targets: string[]
}

/**
 * axe-core on the page as it is now, in light and dark, at desktop and phone size: returns the serious and
 * critical violations, asserts nothing pushes the page wider than a phone's screen, and screenshots each
 * mode as `<prefix>-<name>-<scheme>-<size>.png`. The viewport and scheme are put back afterwards.
 */
export async function axeScan(
  page: Page,
  name: string,
  opts: { prefix: string; sizes?: ReadonlyArray<'desktop' | 'phone'> },
): Promise<AxeFinding[]> {
  const found: AxeFinding[] = []
  const before = page.viewportSize()
  for (const scheme of ['light', 'dark'] as const) {
    await page.emulateMedia({ colorScheme: scheme })
    for (const size of opts.sizes ?? (['desktop', 'phone'] as const)) {
      await page.setViewportSize(size === 'desktop' ? DESKTOP : PHONE)
      // The theme follows the emulated scheme (the toggle is on "system").
      await page.waitForFunction(
        (dark) => document.documentElement.classList.contains(dark ? 'dark' : 'light'),
        scheme === 'dark',
      )
      if ((await page.evaluate(() => typeof (window as { axe?: unknown }).axe)) === 'undefined') {
        await page.addScriptTag({ path: axePath })
        // Colours are measured at rest: naive-ui animates colour changes for 0.3 s after a theme switch.
        await page.addStyleTag({
          content: '*, *::before, *::after { transition: none !important; animation: none !important; }',
        })
      }
      await page.waitForTimeout(150)
      const violations = await page.evaluate(async () => {
        interface AxeResult {
          violations: Array<{
            id: string
            impact: string | null
            help: string
            nodes: Array<{ target: string[] }>
          }>
        }
        const axe = (window as unknown as { axe: { run: (d: Document, o: object) => Promise<AxeResult> } })
          .axe
        const res = await axe.run(document, { resultTypes: ['violations'] })
        return res.violations.map((v) => ({
          id: v.id,
          impact: v.impact ?? 'unknown',
          help: v.help,
          targets: v.nodes.slice(0, 5).map((n) => n.target.join(' ')),
        }))
      })
      for (const v of violations) {
        if (v.impact === 'critical' || v.impact === 'serious') {
          found.push({
            page: name,
            mode: `${scheme} ${size}`,
            rule: v.id,
            impact: v.impact,
            help: v.help,
            targets: v.targets,
          })
        }
      }
      if (size === 'phone') {
        expect(
          await page.evaluate(() => document.documentElement.scrollWidth),
          `${name} at 390 px`,
        ).toBeLessThanOrEqual(PHONE.width)
      }
      await page.screenshot({
        path: join(screenshotDir, `${opts.prefix}-${name}-${scheme}-${size}.png`),
        fullPage: true,
      })
    }
  }
  await page.emulateMedia({ colorScheme: 'light' })
  if (before) await page.setViewportSize(before)
  return found
}

/** One line per finding, for an assertion message. */
export const axeLine = (f: AxeFinding) =>
  `${f.page} (${f.mode}): ${f.rule} ${f.impact} at ${f.targets.join(', ')}`

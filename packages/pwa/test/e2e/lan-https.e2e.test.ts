import { type ChildProcess, execFileSync, spawn } from 'node:child_process'
import { randomBytes, randomInt } from 'node:crypto'
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { certificateFingerprint, spkiSha256Base64 } from '@sharedllm/core'
import { fakeOllamaBin } from '@sharedllm/core/testing'
import { type Browser, chromium, type Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CHROMIUM_ARGS, ensureScreenshotDir, findChromium, repoRoot } from './harness'

// A phone on the LAN, for real: the built server and Chromium run inside a network namespace this test
// creates, at a non-loopback address (10.231.x.1 on a veth pair), with the host CA's SPKI hash given to
// Chromium as trusted. No traffic leaves that namespace.
const cli = join(repoRoot, 'packages/server-express/dist/cli.js')
const IP = '/usr/sbin/ip'

function prerequisites(): string[] {
  const missing: string[] = []
  if (process.platform !== 'linux') return ['network namespaces need Linux']
  if (process.getuid?.() !== 0) missing.push('not root: network namespaces need root (CI runs as root)')
  if (!existsSync(IP)) missing.push(`no ${IP} (apt-get install -y iproute2)`)
  if (!findChromium()) missing.push('no Chromium at /usr/bin/chromium (apt-get install -y chromium)')
  if (!existsSync(cli) || readFileSync(cli, 'utf8').includes('not built yet'))
    missing.push('the server CLI is not built (run `pnpm build`)')
  if (!existsSync(join(repoRoot, 'packages/pwa/dist/sw.js')))
    missing.push('the PWA is not built (run `pnpm build`)')
  if (missing.length === 0) {
    // Creating one is the only real test of the capability (a container may lack CAP_NET_ADMIN).
    const probe = `sllm-probe-${process.pid}-${randomInt(1e6)}`
    try {
      execFileSync(IP, ['netns', 'add', probe], { stdio: 'pipe' })
      execFileSync(IP, ['netns', 'del', probe], { stdio: 'pipe' })
    } catch (err) {
      missing.push(`cannot create a network namespace: ${(err as Error).message.split('\n')[0]}`)
    }
  }
  return missing
}

const missing = prerequisites()
if (missing.length > 0) {
  const bar = '!'.repeat(78)
  console.warn(
    `\n${bar}\n!! LAN HTTPS END-TO-END SUITE SKIPPED:\n${missing.map((m) => `!!   - ${m}`).join('\n')}\n${bar}\n`,
  )
}

function ip(...args: string[]): void {
  execFileSync(IP, args, { stdio: 'pipe' })
}

/** Spawns `cmd` inside the namespace and resolves once `ready` matches its output. */
function spawnIn(
  ns: string,
  cmd: string[],
  env: Record<string, string>,
  ready: RegExp,
): Promise<{ child: ChildProcess; output: () => string; match: RegExpExecArray }> {
  const child = spawn(IP, ['netns', 'exec', ns, ...cmd], {
    cwd: repoRoot,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let out = ''
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${cmd[1]} did not start in 60 s:\n${out}`)), 60_000)
    const onData = (s: string) => {
      out += s
      const m = ready.exec(out)
      if (m) {
        clearTimeout(timer)
        resolve({ child, output: () => out, match: m })
      }
    }
    child.stdout!.setEncoding('utf8').on('data', onData)
    child.stderr!.setEncoding('utf8').on('data', onData)
    child.once('exit', (code, signal) => {
      clearTimeout(timer)
      reject(new Error(`${cmd[1]} exited (${code ?? signal}) before it was ready:\n${out}`))
    })
  })
}

async function stop(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return
  const gone = new Promise((r) => child.once('exit', r))
  child.kill('SIGTERM')
  const hard = setTimeout(() => child.kill('SIGKILL'), 5000)
  await gone
  clearTimeout(hard)
}

describe.skipIf(missing.length > 0)(
  'the PWA at a LAN address over HTTPS (network namespace, real Chromium)',
  () => {
    const ns = `sllm-https-${process.pid}-${randomBytes(3).toString('hex')}`
    const addr = `10.231.${randomInt(1, 255)}.1`
    const httpPort = 18080
    const httpsPort = 18443
    const secret = randomBytes(24).toString('hex')
    const dir = mkdtempSync(join(tmpdir(), 'sllm-lan-https-'))
    const shots = ensureScreenshotDir()
    let nsCreated = false
    let ollama: ChildProcess | undefined
    let server: ChildProcess | undefined
    let serverOutput = () => ''
    let browser: Browser
    let page: Page
    let caPem: string

    beforeAll(async () => {
      ip('netns', 'add', ns)
      nsCreated = true
      ip('-n', ns, 'link', 'add', 'sllm-a', 'type', 'veth', 'peer', 'name', 'sllm-b')
      ip('-n', ns, 'addr', 'add', `${addr}/24`, 'dev', 'sllm-a')
      for (const dev of ['lo', 'sllm-a', 'sllm-b']) ip('-n', ns, 'link', 'set', dev, 'up')

      // The namespace has its own loopback, so the fake Ollama runs in there too.
      const fake = await spawnIn(
        ns,
        [process.execPath, fakeOllamaBin, 'serve'],
        { OLLAMA_HOST: '127.0.0.1:11434', FAKE_OLLAMA_RECORD: '0' },
        /Listening on (\S+) /,
      )
      ollama = fake.child
      const started = await spawnIn(
        ns,
        [
          process.execPath,
          cli,
          '--port',
          String(httpPort),
          '--https-port',
          String(httpsPort),
          '--data-dir',
          join(dir, 'data'),
          '--no-mdns',
          '--no-auto-start-ollama',
          '--ollama-host',
          'http://127.0.0.1:11434',
        ],
        { SHAREDLLM_ADMIN_TOKEN: secret, SHAREDLLM_LOG_LEVEL: 'warn' },
        /over HTTPS on port (\d+)[\s\S]*fingerprint \(SHA-256\): (\S+)/,
      )
      server = started.child
      serverOutput = started.output
      caPem = readFileSync(join(dir, 'data', 'tls', 'ca.crt'), 'utf8')
      expect(started.match[2]).toBe(certificateFingerprint(caPem))
      expect(serverOutput()).toContain(`https://${addr}:${httpsPort}`)

      // Chromium in the namespace too: a two-line wrapper as its executable.
      const wrapper = join(dir, 'chromium-in-ns.sh')
      writeFileSync(wrapper, `#!/bin/sh\nexec ${IP} netns exec ${ns} ${findChromium()} "$@"\n`)
      chmodSync(wrapper, 0o755)
      browser = await chromium.launch({
        executablePath: wrapper,
        // The CA's key, not the leaf's: the server sends the chain, so trusting the CA is enough.
        args: [...CHROMIUM_ARGS, `--ignore-certificate-errors-spki-list=${spkiSha256Base64(caPem)}`],
      })
      const ctx = await browser.newContext({ viewport: { width: 412, height: 860 } })
      page = await ctx.newPage()
    })

    afterAll(async () => {
      await browser?.close().catch(() => {})
      await stop(server)
      await stop(ollama)
      if (nsCreated) {
        try {
          ip('netns', 'del', ns)
        } catch (err) {
          console.warn(`could not delete network namespace ${ns}: ${(err as Error).message}`)
        }
      }
      rmSync(dir, { recursive: true, force: true })
    })

    it('over HTTPS at the LAN address: a secure context, the manifest served, the service worker active', async () => {
      const base = `https://${addr}:${httpsPort}`
      const res = await page.goto(`${base}/`)
      expect(res?.status()).toBe(200)
      expect(await page.evaluate(() => window.isSecureContext)).toBe(true)
      expect(await page.evaluate(() => location.hostname)).toBe(addr)

      const manifest = await page.evaluate(async () => {
        const link = document.querySelector<HTMLLinkElement>('link[rel="manifest"]')
        const r = await fetch(link?.href ?? '/manifest.webmanifest')
        return {
          href: link?.href ?? null,
          status: r.status,
          type: r.headers.get('content-type'),
          body: await r.json(),
        }
      })
      expect(manifest.href).toBe(`${base}/manifest.webmanifest`)
      expect(manifest.status).toBe(200)
      expect(manifest.type).toMatch(/manifest\+json|application\/json/)
      expect(manifest.body.name).toMatch(/sharedLLM/)

      const sw = await page.evaluate(async () => {
        const reg = await Promise.race([
          navigator.serviceWorker.ready,
          new Promise<null>((r) => setTimeout(() => r(null), 30_000)),
        ])
        const worker = reg?.active
        if (worker && worker.state !== 'activated') {
          await new Promise((r) =>
            worker.addEventListener('statechange', () => worker.state === 'activated' && r(0)),
          )
        }
        return {
          scope: reg?.scope ?? null,
          state: reg?.active?.state ?? null,
          url: reg?.active?.scriptURL ?? null,
        }
      })
      expect(sw).toEqual({ scope: `${base}/`, state: 'activated', url: `${base}/sw.js` })
      // `/` asks who this is; the join page it leads to, being secure, shows no certificate guidance.
      await page.click('[data-choice="join"]')
      await page.waitForSelector('[data-action="request"]')
      expect(await page.locator('[data-testid="cert-guide"]').count()).toBe(0)
      await page.screenshot({ path: join(shots, 'lan-https-secure-phone.png'), fullPage: true })
    })

    it('the admin, over HTTPS at the LAN address, gets a live socket and the trust-then-pair steps', async () => {
      const base = `https://${addr}:${httpsPort}`
      await page.goto(`${base}/login`)
      await page.fill('[data-field="secret"] input', secret)
      await page.click('[data-action="login"]')
      await page.waitForURL(`${base}/admin`)
      // The WebSocket over TLS (same-origin https Origin, cookie) is open.
      await page.waitForSelector('[data-conn="open"]', { timeout: 15_000 })
      await page.goto(`${base}/admin/add-device`)
      const trust = page.locator('[data-card="trust"]')
      await trust.waitFor()
      expect(await trust.locator('[data-fingerprint]').textContent()).toBe(certificateFingerprint(caPem))
      await trust.locator('[data-qr-ca] svg').waitFor()
      expect(await trust.locator('[data-link="ca-crt"]').getAttribute('href')).toBe(
        `http://${addr}:${httpPort}/ca.crt`,
      )
      await page.click('[data-action="pair"]')
      const link = (await page.locator('[data-copy-text="pairing-link"]').textContent())?.trim() ?? ''
      expect(link).toMatch(new RegExp(`^https://${addr.replace(/\./g, '\\.')}:${httpsPort}/join\\?code=`))
      await page.setViewportSize({ width: 1280, height: 900 })
      await page.screenshot({ path: join(shots, 'lan-https-add-device-desktop.png'), fullPage: true })
      await page.setViewportSize({ width: 412, height: 860 })
    })

    it('over plain HTTP at the same address: not secure, and the certificate guidance is shown', async () => {
      const ctx = await browser.newContext({ viewport: { width: 412, height: 860 } })
      const phone = await ctx.newPage()
      try {
        const base = `http://${addr}:${httpPort}`
        const res = await phone.goto(`${base}/join?code=ABCDEFGH`)
        expect(res?.status()).toBe(200)
        expect(await phone.evaluate(() => window.isSecureContext)).toBe(false)
        const guide = phone.locator('[data-testid="cert-guide"]')
        await guide.waitFor({ timeout: 15_000 })
        expect(await guide.textContent()).toContain('Install the host certificate')
        // One line; the steps open on request.
        await guide.locator('[data-action="open-cert-steps"]').click()
        await guide.locator('[data-fingerprint]').waitFor()
        expect(await guide.locator('[data-fingerprint]').textContent()).toBe(certificateFingerprint(caPem))
        // The way to HTTPS keeps the pairing code.
        expect(await guide.locator('[data-action="open-secure"]').getAttribute('href')).toBe(
          `https://${addr}:${httpsPort}/join?code=ABCDEFGH`,
        )
        // The CA download is served on HTTP with its MIME type, so the phone's installer takes it.
        const crt = await phone.evaluate(async () => {
          const r = await fetch('/ca.crt')
          return { status: r.status, type: r.headers.get('content-type'), body: await r.text() }
        })
        expect(crt.status).toBe(200)
        expect(crt.type).toMatch(/^application\/x-x509-ca-cert/)
        expect(certificateFingerprint(crt.body)).toBe(certificateFingerprint(caPem))
        await phone.screenshot({
          path: join(shots, 'lan-https-plain-http-guidance-phone.png'),
          fullPage: true,
        })
      } finally {
        await ctx.close()
      }
    })

    it('the server logged no errors', () => {
      expect(serverOutput()).not.toMatch(/"level":(50|60)/)
    })
  },
)

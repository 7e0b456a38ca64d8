#!/usr/bin/env node
import { arch, platform } from 'node:os'
import { join as joinPath } from 'node:path'
import { parseArgs } from 'node:util'
import {
  createHub,
  defaultDataDir,
  errorMessage,
  isSharedLLMError,
  readConfigFile,
  type SettingsValues,
  silentLogger,
} from '@sharedllm/core'
import { VERSION } from './app'
import { printBanner } from './console-banner'
import { joinHost } from './join-client'
import { listen } from './listen'
import { createServerLogger } from './logger'
import { HostTls } from './tls'

const HELP = `sharedllm ${VERSION}: share this machine's Ollama safely with the devices on your network

Usage:
  sharedllm [serve] [options]        start the host (dashboard, API, gateway)
  sharedllm admin reset-token        make a new admin secret; the old one and all sessions stop working
  sharedllm join <url> --name <name> ask a host for access, wait for approval, print the device key

Options (serve):
  --port <n>               HTTP port                          env SHAREDLLM_PORT        default 8080
  --https-port <n>         HTTPS port (0: off)                env SHAREDLLM_HTTPS_PORT  default 8443
  --no-https               serve HTTP only (no certificates are made)
  --https-only             over HTTP serve only joining and the CA certificate; the rest needs HTTPS
  --host <address>         bind address                       env SHAREDLLM_HOST        default 0.0.0.0
  --data-dir <dir>         where the database lives           env SHAREDLLM_DATA_DIR    default ~/.sharedllm
  --ollama-host <url>      Ollama to talk to (loopback only)  env SHAREDLLM_OLLAMA_HOST default http://127.0.0.1:11434
  --allow-remote-ollama    let --ollama-host / ollama_host be another machine (every prompt goes there)
  --ollama-bin <path>      absolute path of the ollama binary to start (default: search PATH)
  --provider <package>     extra memory provider package to load (repeatable)
  --config <file>          JSON config file                   default <data-dir>/config.json if it exists
  --allowed-host <name>    extra name accepted in Host (repeatable)
  --no-mdns                do not advertise or browse the LAN
  --no-auto-start-ollama   never start \`ollama serve\`
  -h, --help               this help
  -v, --version            the version

Options (join):
  --name <name>            how the host will list this device (required)
  --pairing-code <code>    a one-time code from the host: approved at once
  --interval <seconds>     polling interval while waiting     default 3

Environment:
  SHAREDLLM_ADMIN_TOKEN    use this admin secret (≥ 16 characters) instead of a generated one
  SHAREDLLM_LOG_LEVEL      debug | info | warn | error          default info
`

class UsageError extends Error {}

function httpsPortIsOff(value: string | undefined): boolean {
  return value !== undefined && value.trim() === '0'
}

function intOption(value: string | undefined, name: string, min: number, max: number): number | undefined {
  if (value === undefined || value === '') return undefined
  const n = Number(value)
  if (!Number.isInteger(n) || n < min || n > max)
    throw new UsageError(`${name} must be a whole number from ${min} to ${max}`)
  return n
}

function parse(argv: string[]) {
  return parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      port: { type: 'string' },
      'https-port': { type: 'string' },
      'no-https': { type: 'boolean' },
      'https-only': { type: 'boolean' },
      host: { type: 'string' },
      'data-dir': { type: 'string' },
      'ollama-host': { type: 'string' },
      'allow-remote-ollama': { type: 'boolean' },
      'ollama-bin': { type: 'string' },
      provider: { type: 'string', multiple: true },
      config: { type: 'string' },
      'allowed-host': { type: 'string', multiple: true },
      'no-mdns': { type: 'boolean' },
      'no-auto-start-ollama': { type: 'boolean' },
      name: { type: 'string' },
      'pairing-code': { type: 'string' },
      interval: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
      version: { type: 'boolean', short: 'v' },
    },
  })
}

type Parsed = ReturnType<typeof parse>

async function serve(args: Parsed): Promise<void> {
  const { values } = args
  const env = process.env
  const log = createServerLogger()
  const port = intOption(values.port ?? env.SHAREDLLM_PORT, '--port', 0, 65535)
  const overrides: Partial<SettingsValues> = {}
  // Port 0 (a free port, for tests) is for this run only: not a value of the setting.
  if (port !== undefined && port > 0) overrides.api_port = port
  const httpsPort = intOption(values['https-port'] ?? env.SHAREDLLM_HTTPS_PORT, '--https-port', 0, 65535)
  if (
    values['https-only'] &&
    (values['no-https'] || httpsPortIsOff(values['https-port'] ?? env.SHAREDLLM_HTTPS_PORT))
  )
    throw new UsageError('--https-only needs HTTPS: drop --no-https or give --https-port a port')
  if (values['no-https']) overrides.https_port = 0
  else if (httpsPort !== undefined) overrides.https_port = httpsPort
  const ollamaHost = values['ollama-host'] ?? env.SHAREDLLM_OLLAMA_HOST
  if (ollamaHost) overrides.ollama_host = ollamaHost.replace(/\/+$/, '')
  if (values['no-mdns']) overrides.mdns_enabled = false
  if (values['no-auto-start-ollama']) overrides.auto_start_ollama = false
  if (values['ollama-bin']) overrides.ollama_bin = values['ollama-bin']
  if (values.provider?.length) overrides.extra_providers = values.provider

  // The config file (the only other place code-running settings come from); command-line flags win over it.
  const dataDir = values['data-dir'] ?? env.SHAREDLLM_DATA_DIR ?? defaultDataDir()
  const config = values.config
    ? await readConfigFile(values.config, { required: true })
    : await readConfigFile(joinPath(dataDir, 'config.json'))

  let tls: HostTls | undefined
  const hub = createHub({
    dataDir,
    logger: log,
    settings: { ...config.settings, ...overrides },
    allowRemoteOllama: values['allow-remote-ollama'] === true || config.allowRemoteOllama,
    // The provider packages are this package's dependencies: resolve them from here, not from the cwd.
    providerResolveFrom: [import.meta.url],
    // Peers read these to reach us over HTTPS and to check the CA they download from us.
    discoveryTxt: (): Record<string, string> => {
      const p = hub.settings.get('https_port')
      return tls && p > 0 ? { https: String(p), ca: tls.certs.caFingerprintSha256 } : {}
    },
  })
  // Certificates before the hub starts, so the first mDNS advert already carries the CA fingerprint.
  if (!values['no-https'] && overrides.https_port !== 0) {
    tls = await HostTls.create({ dataDir: hub.dataDir, log })
  }
  await hub.start()
  if (hub.settings.get('https_port') === 0) tls = undefined
  tls?.start()
  const fromEnv = env.SHAREDLLM_ADMIN_TOKEN || undefined
  const newSecret = await hub.admin.ensureSecret(fromEnv)
  const listenOptions = {
    host: values.host ?? env.SHAREDLLM_HOST ?? '0.0.0.0',
    ...(port !== undefined ? { port } : {}),
    allowedHosts: values['allowed-host'] ?? [],
  }
  let running: Awaited<ReturnType<typeof listen>>
  try {
    if (values['https-only'] && !tls)
      throw new UsageError('--https-only needs HTTPS, but the https_port setting is 0')
    running = await listen(hub, {
      ...listenOptions,
      ...(tls ? { https: { tls, port: hub.settings.get('https_port') } } : {}),
      ...(values['https-only'] ? { httpsOnly: true } : {}),
    })
  } catch (err) {
    // HTTPS is an extra: when its port was not asked for and is taken, serve HTTP and say so.
    const e = err as NodeJS.ErrnoException & { port?: number }
    const httpsTaken = e.code === 'EADDRINUSE' && e.port === hub.settings.get('https_port')
    if (!tls || httpsPort !== undefined || !httpsTaken || values['https-only']) throw err
    log.warn(
      { port: hub.settings.get('https_port') },
      'the HTTPS port is in use; serving HTTP only (pick another with --https-port)',
    )
    tls.stop()
    tls = undefined
    running = await listen(hub, listenOptions)
  }
  const link = await hub.admin.createLoginLink()
  printBanner(hub, {
    version: VERSION,
    host: listenOptions.host,
    port: running.port,
    urls: running.urls,
    https: running.https && tls ? running.https : undefined,
    caFingerprint: running.https && tls ? tls.certs.caFingerprintSha256 : undefined,
    loginToken: link,
    newSecret,
  })
  log.info(
    { port: running.port, https_port: running.https?.port ?? null, dataDir: hub.dataDir },
    'sharedLLM listening',
  )

  let stopping = false
  const shutdown = (signal: string) => {
    if (stopping) {
      log.warn({ signal }, 'second signal: exiting now')
      process.exit(1)
    }
    stopping = true
    log.info({ signal }, 'shutting down: finishing open requests (up to 25 s)')
    const hard = setTimeout(() => {
      log.error('shutdown took longer than 30 s; exiting')
      process.exit(1)
    }, 30_000)
    hard.unref()
    tls?.stop()
    running
      .close()
      .then(() => hub.stop())
      .then(
        () => {
          log.info('stopped')
          process.exit(0)
        },
        (err) => {
          log.error({ err }, 'error during shutdown')
          process.exit(1)
        },
      )
  }
  process.on('SIGINT', () => shutdown('SIGINT'))
  process.on('SIGTERM', () => shutdown('SIGTERM'))
}

async function resetToken(args: Parsed): Promise<void> {
  // Only the store: no probes, no Ollama, no mDNS for a one-shot admin command.
  const hub = createHub({
    dataDir: args.values['data-dir'] ?? process.env.SHAREDLLM_DATA_DIR,
    logger: silentLogger,
    providers: false,
    ollama: false,
    discovery: false,
  })
  await hub.start()
  try {
    const secret = await hub.admin.resetSecret('cli')
    process.stdout.write(
      `New admin secret (shown once; every session and login link made before now stopped working):\n  ${secret}\n` +
        'A host that is running keeps accepting the old secret as a bearer token until it restarts.\n',
    )
  } finally {
    await hub.stop()
  }
}

async function join(args: Parsed): Promise<void> {
  const url = args.positionals[1]
  const name = args.values.name
  if (!url)
    throw new UsageError(
      'join needs the host URL, e.g. sharedllm join http://192.168.1.20:8080 --name laptop',
    )
  if (!name) throw new UsageError('join needs --name <name>')
  const intervalS = intOption(args.values.interval, '--interval', 1, 3600) ?? 3
  const key = await joinHost({
    url,
    name,
    platform: `${platform()}-${arch()}`,
    ...(args.values['pairing-code'] ? { pairingCode: args.values['pairing-code'] } : {}),
    intervalMs: intervalS * 1000,
    onStatus: (msg) => process.stderr.write(`${msg}\n`),
  })
  process.stderr.write('Approved. Device key (shown once; keep it safe):\n')
  process.stdout.write(`${key}\n`)
}

export async function main(argv: string[]): Promise<void> {
  // Before anything is written: every file and directory this process makes is the owner's alone.
  process.umask(0o077)
  // `npm start -- --port 9000` habits: pnpm passes the `--` on, which would make every option a positional.
  const args = parse(argv[0] === '--' ? argv.slice(1) : argv)
  if (args.values.help) {
    process.stdout.write(HELP)
    return
  }
  if (args.values.version) {
    process.stdout.write(`${VERSION}\n`)
    return
  }
  const [command = 'serve', sub] = args.positionals
  if (command === 'serve') return serve(args)
  if (command === 'admin' && sub === 'reset-token') return resetToken(args)
  if (command === 'join') return join(args)
  throw new UsageError(`unknown command '${command}'; the commands are serve, admin reset-token and join`)
}

main(process.argv.slice(2)).catch((err: unknown) => {
  if (err instanceof UsageError || (err as { code?: string })?.code?.startsWith?.('ERR_PARSE_ARGS')) {
    process.stderr.write(`sharedllm: ${errorMessage(err)}\nRun sharedllm --help for usage.\n`)
    process.exit(2)
  }
  if ((err as NodeJS.ErrnoException)?.code === 'EADDRINUSE') {
    process.stderr.write(
      `sharedllm: the port is already in use (${errorMessage(err)}); pick another with --port or --https-port\n`,
    )
    process.exit(1)
  }
  process.stderr.write(`sharedllm: ${isSharedLLMError(err) ? err.message : errorMessage(err)}\n`)
  process.exit(1)
})

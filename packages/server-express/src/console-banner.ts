import type { Hub, OllamaStatus } from '@sharedllm/core'

export interface BannerInput {
  version: string
  /** The bound address (`--host`). */
  host: string
  port: number
  /** Every http:// address the server answers on (loopback first), from `listen()`. */
  urls: string[]
  https?: { port: number; urls: string[] } | undefined
  caFingerprint?: string | undefined
  /** The one-time login token. */
  loginToken: string
  /** A first admin secret, shown once. */
  newSecret?: string | null | undefined
}

const isLoopback = (h: string) => h === 'localhost' || h === '::1' || h.startsWith('127.')
const isWildcard = (h: string) => h === '0.0.0.0' || h === '::' || h === ''

/**
 * Where the owner at this machine opens the login link. A browser treats `localhost` as a secure context
 * over plain HTTP, so the owner lands on the app, not on certificate advice; that works only when the
 * server listens on loopback (a wildcard or loopback bind), else the bound address is the one to use.
 */
export function ownerBaseUrl(host: string, port: number): string {
  if (isWildcard(host) || isLoopback(host)) return `http://localhost:${port}`
  return `http://${host.includes(':') ? `[${host}]` : host}:${port}`
}

/** The addresses other devices type: LAN ones, HTTPS first when it is on (the app installs only there). */
export function phoneUrls(input: Pick<BannerInput, 'urls' | 'https'>): { https: string[]; http: string[] } {
  const lan = (list: string[]) => list.filter((u) => !isLoopback(new URL(u).hostname.replace(/^\[|\]$/g, '')))
  return { https: lan(input.https?.urls ?? []), http: lan(input.urls) }
}

/** The lines the CLI prints when the host is up. Printed, never logged: the link and a secret are credentials. */
export function bannerLines(input: BannerInput): string[] {
  const lines = ['', `  sharedLLM ${input.version} is listening on port ${input.port}`]
  lines.push(
    '',
    '  Host owner, on this machine: open the dashboard (one-time admin login link, valid 24 h):',
    `    ${ownerBaseUrl(input.host, input.port)}/login?token=${input.loginToken}`,
  )
  const phones = phoneUrls(input)
  lines.push('')
  if (input.https)
    lines.push(
      `  Also over HTTPS on port ${input.https.port}: phones install the app there, after trusting the host certificate once`,
    )
  if (phones.https.length === 0 && phones.http.length === 0) {
    lines.push(
      `  Phones and laptops: none can reach it; it listens on ${input.host} only (start with --host 0.0.0.0 to share it)`,
    )
  } else {
    lines.push('  Phones and laptops on your network: open one of these and tap Request access')
    for (const u of phones.http) lines.push(`    ${u}`)
    if (phones.https.length > 0) {
      lines.push(
        '  To install the app on a phone (HTTPS; the page walks through trusting the host certificate):',
        ...phones.https.map((u) => `    ${u}`),
      )
    }
  }
  if (input.caFingerprint) lines.push(`  Host CA fingerprint (SHA-256): ${input.caFingerprint}`)
  if (input.newSecret) {
    lines.push(
      '',
      '  Admin secret (shown once; for scripts: Authorization: Bearer <secret>):',
      `    ${input.newSecret}`,
      '  Lost it? Run `sharedllm admin reset-token`.',
    )
  }
  return lines
}

/** One line on what Ollama is doing, or null when there is nothing new for the console. */
export function ollamaLine(status: OllamaStatus, autoStart: boolean): string | null {
  if (status.running)
    return `  Ollama ${status.version ? `${status.version} ` : ''}is running at ${status.host}`
  if (status.state === 'starting' || status.state === 'unknown') return null
  const why = status.last_error ?? `nothing answers at ${status.host}`
  const fix = autoStart
    ? status.gave_up
      ? 'it kept failing to start; check `ollama serve` by hand, then restart sharedLLM'
      : 'install it from https://ollama.com/download (or set ollama_bin); sharedLLM starts it when it can'
    : 'start `ollama serve`, or turn on auto_start_ollama'
  return `  Ollama is not running: ${why}. To fix: ${fix}. Devices cannot chat until it runs.`
}

/**
 * Prints the banner now and a line each time Ollama goes up or down, so a missing Ollama is said on the
 * console and not only in the dashboard. Returns the unsubscribe function.
 */
export function printBanner(
  hub: Hub,
  input: BannerInput,
  write: (text: string) => void = (t) => process.stdout.write(t),
): () => void {
  write(`${bannerLines(input).join('\n')}\n\n`)
  let last: string | null = null
  const report = (status: OllamaStatus) => {
    const line = ollamaLine(status, hub.settings.get('auto_start_ollama'))
    if (line === null || line === last) return
    last = line
    write(`${line}\n`)
  }
  report(hub.ollama.status())
  return hub.on('ollama_status', report)
}

import {
  ensureHostCertificates,
  errorMessage,
  type HostCertificates,
  iosMobileConfig,
  lanAddresses,
  type Logger,
  SharedLLMError,
  silentLogger,
  type TlsInfoResponse,
} from '@sharedllm/core'
import { hostOf } from './host-check'
import { type AnyRoute, route } from './routes/define'

export interface HostTlsOptions {
  /** Certificates live in `<dataDir>/tls/`. */
  dataDir: string
  /** @default os.hostname() */
  hostname?: string
  /** The LAN addresses the certificate must cover. @default lanAddresses() */
  addresses?: () => string[]
  /** How often expiry is checked again (renewal happens 30 days before it). @default one day */
  recheckMs?: number
  /** How often the LAN addresses are compared with the last ones seen. @default 30_000 */
  addressPollMs?: number
  now?: () => Date
  log?: Logger
  /** Background failures (re-check, reissue). They are logged too; nothing is thrown. */
  onError?: (err: unknown) => void
}

/**
 * The host's certificates for HTTPS: ensured at creation (CA made on first start, server certificate
 * reissued when expired, not from the CA, or missing an address), then re-checked daily and whenever the
 * LAN addresses change. Listeners hear about a reissue so the server can `setSecureContext` without a restart.
 */
export class HostTls {
  /** The port HTTPS listens on; set by `listen()` once it does. */
  port: number | undefined
  /** The plain-HTTP port beside it (where the CA is downloaded); set by `listen()`. */
  httpPort: number | undefined
  private current: HostCertificates
  private readonly listeners = new Set<(certs: HostCertificates) => void>()
  private readonly timers: NodeJS.Timeout[] = []
  private lastAddresses: string
  private chain: Promise<unknown> = Promise.resolve()
  private stopped = false

  private constructor(
    private readonly o: HostTlsOptions,
    certs: HostCertificates,
    addresses: string[],
  ) {
    this.current = certs
    this.lastAddresses = key(addresses)
  }

  /** Ensures the certificates now (first start creates the CA); errors here are the caller's to report. */
  static async create(o: HostTlsOptions): Promise<HostTls> {
    const addresses = (o.addresses ?? lanAddresses)()
    const certs = await ensureHostCertificates(ensureOptions(o, addresses))
    return new HostTls(o, certs, addresses)
  }

  get certs(): HostCertificates {
    return this.current
  }

  /** Starts the daily re-check and the address watch (timers do not keep the process alive). */
  start(): void {
    if (this.timers.length > 0 || this.stopped) return
    this.timers.push(setInterval(() => void this.check('daily re-check'), this.o.recheckMs ?? 86_400_000))
    this.timers.push(
      setInterval(() => {
        const now = key((this.o.addresses ?? lanAddresses)())
        if (now !== this.lastAddresses) void this.check('addresses changed')
      }, this.o.addressPollMs ?? 30_000),
    )
    for (const t of this.timers) t.unref()
  }

  stop(): void {
    this.stopped = true
    for (const t of this.timers.splice(0)) clearInterval(t)
    this.listeners.clear()
  }

  /** Called with the new certificates after each reissue. Returns the unsubscribe. */
  onReissue(fn: (certs: HostCertificates) => void): () => void {
    this.listeners.add(fn)
    return () => this.listeners.delete(fn)
  }

  /**
   * Re-runs the check (one at a time); reissues and tells the listeners when needed. Never throws: a failure
   * is logged and handed to `onError`, and the current certificates stay in use.
   */
  check(reason = 'check'): Promise<HostCertificates> {
    const run = this.chain.then(async () => {
      if (this.stopped) return this.current
      const log = this.o.log ?? silentLogger
      try {
        const addresses = (this.o.addresses ?? lanAddresses)()
        const certs = await ensureHostCertificates(ensureOptions(this.o, addresses))
        this.lastAddresses = key(addresses)
        this.current = certs
        if (certs.reissued) {
          log.info({ reason, sans: certs.sans, notAfter: certs.notAfter }, 'reissued the server certificate')
          for (const fn of this.listeners) {
            try {
              fn(certs)
            } catch (err) {
              log.error({ err }, 'applying the reissued certificate failed')
              this.o.onError?.(err)
            }
          }
        }
      } catch (err) {
        log.error({ err, reason }, `certificate check failed: ${errorMessage(err)}`)
        this.o.onError?.(err)
      }
      return this.current
    })
    this.chain = run
    return run
  }
}

function ensureOptions(o: HostTlsOptions, addresses: string[]) {
  return {
    dataDir: o.dataDir,
    addresses,
    ...(o.hostname !== undefined ? { hostname: o.hostname } : {}),
    ...(o.now ? { now: o.now } : {}),
    ...(o.log ? { log: o.log } : {}),
  }
}

function key(addresses: string[]): string {
  return [...new Set(addresses)].sort().join(',')
}

function urlHost(host: string): string {
  return host.includes(':') ? `[${host}]` : host
}

/** Names a certificate's SANs as the Host allowlist takes them (IPv6 bracketed). */
export function sanHosts(certs: HostCertificates): string[] {
  return [...certs.sans.dns, ...certs.sans.ip.map(urlHost)]
}

/**
 * `https://<name>:<port>` for the name the caller used (when the certificate covers it and it is not
 * loopback), then every LAN address and the mDNS name: what a phone can open.
 */
export function httpsUrls(tls: HostTls, requestHost?: string): string[] {
  if (tls.port === undefined) return []
  const port = tls.port === 443 ? '' : `:${tls.port}`
  const { dns, ip } = tls.certs.sans
  const covered = new Set([...dns, ...ip])
  const out: string[] = []
  const loopback = new Set(['127.0.0.1', '::1', 'localhost'])
  const asked = hostOf(requestHost)
  if (asked && covered.has(asked) && !loopback.has(asked)) out.push(`https://${urlHost(asked)}${port}`)
  for (const a of ip) if (!loopback.has(a)) out.push(`https://${urlHost(a)}${port}`)
  for (const d of dns) if (d.endsWith('.local')) out.push(`https://${d}${port}`)
  return [...new Set(out)]
}

function notServing(): SharedLLMError {
  return new SharedLLMError(
    'NOT_FOUND',
    'HTTPS is off on this host, so it has no certificate authority to trust',
  )
}

/**
 * The public routes that get a device to trust the host (on HTTP and HTTPS alike): `/api/tls`, the CA
 * certificate at `/ca.crt` and an iOS configuration profile at `/ca.mobileconfig`.
 */
export function tlsRoutes(tls: HostTls | undefined): AnyRoute[] {
  return [
    route({
      method: 'get',
      path: '/api/tls',
      access: 'public',
      summary: 'The HTTPS port, the CA fingerprint and the https URLs of this host (nulls when HTTPS is off)',
      handler: ({ req }): TlsInfoResponse => {
        if (!tls || tls.port === undefined) {
          return { https_port: null, http_port: null, ca_fingerprint: null, https_urls: [] }
        }
        return {
          https_port: tls.port,
          http_port: tls.httpPort ?? null,
          ca_fingerprint: tls.certs.caFingerprintSha256,
          https_urls: httpsUrls(tls, req.headers.host),
        }
      },
    }),
    route({
      method: 'get',
      path: '/ca.crt',
      access: 'public',
      summary: "The host CA certificate (PEM), to install on a device so it trusts the host's HTTPS",
      handler: ({ res }) => {
        if (!tls) throw notServing()
        res.setHeader('Content-Type', 'application/x-x509-ca-cert')
        res.setHeader('Content-Disposition', 'attachment; filename="sharedllm-ca.crt"')
        res.setHeader('Cache-Control', 'no-cache')
        res.send(tls.certs.caCertPem)
      },
    }),
    route({
      method: 'get',
      path: '/ca.mobileconfig',
      access: 'public',
      summary: 'An Apple configuration profile that installs the host CA (iOS, iPadOS, macOS)',
      handler: ({ res }) => {
        if (!tls) throw notServing()
        const host = tls.certs.sans.dns[1] ?? 'host'
        const body = iosMobileConfig(tls.certs.caCertPem, {
          name: `sharedLLM on ${host}`,
          // Not the instance id: it is no one's business on the LAN (it used to name the device to impersonate).
          identifier: `local.sharedllm.${tls.certs.caFingerprintSha256.replace(/:/g, '').slice(0, 16).toLowerCase()}`,
        })
        res.setHeader('Content-Type', 'application/x-apple-aspen-config')
        res.setHeader('Content-Disposition', 'attachment; filename="sharedllm-ca.mobileconfig"')
        res.setHeader('Cache-Control', 'no-cache')
        res.send(body)
      },
    }),
  ]
}

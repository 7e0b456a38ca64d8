import { X509Certificate } from 'node:crypto'
import { hostname as osHostname } from 'node:os'
import { SharedLLMError } from '../errors'
import { type Logger, silentLogger } from '../logger'
import { desiredSans, lanAddresses, type SanSet } from './addresses'
import { loadOrCreateCa } from './ca'
import { ensureTlsDir, readOptional, tlsPaths, writeFileAtomic } from './files'
import { spkiSha256Base64 } from './fingerprint'
import { certificateSans, issueServerCertificate, reissueReason } from './leaf'

export interface HostCertificates {
  caCertPem: string
  /** Where the CA key lives; the key itself never leaves the disk through this object. */
  caKeyPath: string
  /** The server certificate alone. */
  certPem: string
  /**
   * `certPem + caCertPem`: what an HTTPS server should present. Chromium's SPKI allow-list only matches a
   * key it is sent, so a CA hash there works only when the CA is in the served chain.
   */
  certChainPem: string
  keyPem: string
  /** Colon-separated uppercase hex SHA-256 of the CA certificate's DER, as browsers show it. */
  caFingerprintSha256: string
  /** Base64 SHA-256 of the CA's SubjectPublicKeyInfo (Chromium's `--ignore-certificate-errors-spki-list`). */
  caSpkiSha256Base64: string
  /** The same for the server certificate. */
  leafSpkiSha256Base64: string
  /** What the server certificate covers. */
  sans: SanSet
  notAfter: Date
  /** Whether this call issued a new server certificate. */
  reissued: boolean
  /** Whether this call created the CA (first start). */
  caCreated: boolean
  /**
   * Why this call replaced the CA (expiring, older than the two-year limit, no name constraints, a new host
   * name); null when it did not. Devices must then install the new CA; it is logged as a warning.
   */
  caRotated: string | null
}

export interface EnsureHostCertificatesOptions {
  /** Files go to `<dataDir>/tls/`. */
  dataDir: string
  /** @default os.hostname() */
  hostname?: string
  /** The LAN addresses to cover. @default lanAddresses() */
  addresses?: string[]
  /** @default () => new Date() */
  now?: () => Date
  /** Reissue the server certificate when it expires within this many days. @default 30 */
  renewBeforeDays?: number
  log?: Logger
}

/**
 * Makes `<dataDir>/tls/` hold a CA (created once) and a server certificate it signed that covers localhost,
 * the hostname, `<hostname>.local` and every LAN address; reissues the server certificate when it is
 * missing, unreadable, not from this CA, expiring within `renewBeforeDays`, or missing a name or address.
 * Call it at every start (and when addresses change).
 */
export async function ensureHostCertificates(o: EnsureHostCertificatesOptions): Promise<HostCertificates> {
  if (typeof o.dataDir !== 'string' || o.dataDir.length === 0) {
    throw new SharedLLMError('VALIDATION', 'dataDir is required for the host certificates', {
      details: { field: 'dataDir' },
    })
  }
  const renewBeforeDays = o.renewBeforeDays ?? 30
  if (!Number.isFinite(renewBeforeDays) || renewBeforeDays < 0 || renewBeforeDays > 300) {
    throw new SharedLLMError('VALIDATION', 'renewBeforeDays must be between 0 and 300', {
      details: { field: 'renewBeforeDays' },
    })
  }
  const log = (o.log ?? silentLogger).child({ component: 'tls' })
  const now = (o.now ?? (() => new Date()))()
  const wanted = desiredSans({ hostname: o.hostname, addresses: o.addresses ?? lanAddresses() })
  const paths = tlsPaths(o.dataDir)
  await ensureTlsDir(paths.dir)

  const ca = await loadOrCreateCa(paths, { hostname: o.hostname ?? osHostname(), now, log, dns: wanted.dns })
  let certPem = await readOptional(paths.serverCert).catch(() => null)
  let keyPem = await readOptional(paths.serverKey).catch(() => null)
  const reason = reissueReason({ certPem, keyPem }, ca.certPem, wanted, now, renewBeforeDays)
  if (reason !== null) {
    const issued = await issueServerCertificate(ca, wanted, now)
    // Key first: a crash between the two leaves a pair that does not match, which the next start reissues.
    await writeFileAtomic(paths.serverKey, issued.keyPem, 0o600)
    await writeFileAtomic(paths.serverCert, issued.certPem, 0o644)
    certPem = issued.certPem
    keyPem = issued.keyPem
    log.info({ reason, sans: wanted }, 'issued server certificate')
  }
  const leaf = new X509Certificate(certPem!)
  return {
    caCertPem: ca.certPem,
    caKeyPath: paths.caKey,
    certPem: certPem!,
    certChainPem: certPem! + ca.certPem,
    keyPem: keyPem!,
    caFingerprintSha256: new X509Certificate(ca.certPem).fingerprint256,
    caSpkiSha256Base64: spkiSha256Base64(ca.certPem),
    leafSpkiSha256Base64: spkiSha256Base64(certPem!),
    sans: certificateSans(leaf),
    notAfter: new Date(leaf.validTo),
    reissued: reason !== null,
    caCreated: ca.created,
    caRotated: ca.rotated,
  }
}

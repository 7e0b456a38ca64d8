import { createPrivateKey, createPublicKey, type KeyObject, X509Certificate } from 'node:crypto'
import { rename, unlink } from 'node:fs/promises'
import { join } from 'node:path'
import { SharedLLMError } from '../errors'
import type { Logger } from '../logger'
import { ipBytes, SERVED_RANGES } from './addresses'
import { createFileExclusive, moveExclusive, readOptional, type TlsPaths, writeFileAtomic } from './files'
import {
  BACKDATE_MS,
  DAY_MS,
  type ForgeCert,
  forge,
  newRsaKeyPair,
  randomSerial,
  signCertificate,
} from './keys'

/**
 * How long the CA lasts: at most two years, so a copied CA key stops mattering within that time; it is
 * replaced (with a warning: every phone must install the new one) 30 days before it ends.
 */
export const CA_VALIDITY_DAYS = 730
/** A CA closer than this to its end is rotated. */
export const CA_ROTATE_BEFORE_DAYS = 30
const NAME_CONSTRAINTS_OID = '2.5.29.30'

export interface HostCa {
  certPem: string
  cert: ForgeCert
  key: KeyObject
  /** Subject key identifier, copied into each server certificate's authority key identifier. */
  keyId: string
  created: boolean
  /** Why the CA was replaced by a new one in this call (the old one is retired); null otherwise. */
  rotated: string | null
}

/**
 * The critical nameConstraints extension (RFC 5280 §4.2.1.10): the CA may vouch only for `dns` (and their
 * subdomains) and the `SERVED_RANGES` addresses. A browser that trusts the CA still refuses a certificate
 * from it for any other name, so the CA cannot be used to impersonate another site.
 */
export function nameConstraintsExtension(dns: string[]): {
  id: string
  critical: true
  value: forge.asn1.Asn1
} {
  const { asn1 } = forge
  const subtree = (base: forge.asn1.Asn1) =>
    asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, [base])
  const names = dns.map((d) => subtree(asn1.create(asn1.Class.CONTEXT_SPECIFIC, 2, false, d)))
  const ranges = SERVED_RANGES.map((r) => {
    // iPAddress in a constraint is the network's address followed by its mask (RFC 5280 §4.2.1.10).
    const bytes = ipBytes(r.network)
    const mask = Buffer.from(
      [...bytes].map((_, i) => (0xff << (8 - Math.max(0, Math.min(8, r.prefix - i * 8)))) & 0xff),
    )
    return subtree(
      asn1.create(asn1.Class.CONTEXT_SPECIFIC, 7, false, Buffer.concat([bytes, mask]).toString('binary')),
    )
  })
  const permitted = asn1.create(asn1.Class.CONTEXT_SPECIFIC, 0, true, [...names, ...ranges])
  return {
    id: NAME_CONSTRAINTS_OID,
    critical: true,
    value: asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, [permitted]),
  }
}

/** The DNS names a CA's nameConstraints permit, or null when it has none (a CA of an older version). */
export function permittedDnsNames(certPem: string): string[] | null {
  const cert = forge.pki.certificateFromPem(certPem)
  const ext = cert.getExtension('nameConstraints') as { value?: string } | null
  if (!ext?.value) return null
  const seq = forge.asn1.fromDer(ext.value)
  const permitted = (seq.value as forge.asn1.Asn1[]).find(
    (v) => v.tagClass === forge.asn1.Class.CONTEXT_SPECIFIC && v.type === 0,
  )
  const out: string[] = []
  for (const sub of (permitted?.value as forge.asn1.Asn1[] | undefined) ?? []) {
    const base = (sub.value as forge.asn1.Asn1[])[0]
    if (base && base.tagClass === forge.asn1.Class.CONTEXT_SPECIFIC && base.type === 2)
      out.push(String(base.value).toLowerCase())
  }
  return out
}

/** Why a loaded CA must be replaced now, or null. */
function rotationReason(certPem: string, cert: ForgeCert, dns: string[], now: Date): string | null {
  const { notBefore, notAfter } = cert.validity
  if (notAfter.getTime() <= now.getTime()) return `it expired on ${notAfter.toISOString()}`
  if (notAfter.getTime() - now.getTime() < CA_ROTATE_BEFORE_DAYS * DAY_MS)
    return `it expires on ${notAfter.toISOString()}`
  if (notAfter.getTime() - notBefore.getTime() > (CA_VALIDITY_DAYS + 2) * DAY_MS)
    return 'it is valid for more than two years'
  const permitted = permittedDnsNames(certPem)
  if (permitted === null) return 'it has no name constraints (it could vouch for any site)'
  const missing = dns.filter((d) => !permitted.includes(d.toLowerCase()))
  if (missing.length > 0) return `its name constraints do not cover ${missing.join(', ')}`
  return null
}

/**
 * The host's certificate authority: loaded from `tls/ca.crt` + `tls/ca.key`, or created when neither exists.
 * Anything else (one without the other, unreadable, corrupt, not a pair, expired) is an error naming the
 * file: phones trust this CA, so it is never replaced behind the owner's back.
 */
export async function loadOrCreateCa(
  paths: TlsPaths,
  o: { hostname: string; now: Date; log: Logger; dns: string[] },
): Promise<HostCa> {
  const keyPem = await readOptional(paths.caKey)
  let certPem = await readOptional(paths.caCert)
  if (keyPem === null && certPem === null) return createCa(paths, o)
  if (keyPem === null) {
    throw corrupt(paths.caKey, `${paths.caKey} is missing but ${paths.caCert} exists`, 'restore ca.key')
  }
  const key = parseKey(paths.caKey, keyPem)
  if (certPem === null) certPem = await finishInterruptedCreate(paths, key)
  const cert = parseCaCert(paths.caCert, certPem)
  if (!samePublicKey(key, certPem)) {
    throw corrupt(
      paths.caKey,
      `${paths.caKey} is not the key of ${paths.caCert}`,
      'restore the matching pair',
    )
  }
  const reason = rotationReason(certPem, cert, o.dns, o.now)
  if (reason !== null) {
    // Retired, not deleted: the old certificate stays for reference; its key goes, so it can sign nothing.
    const stamp = o.now.toISOString().replace(/[:.]/g, '-')
    await rename(paths.caCert, join(paths.dir, `ca-retired-${stamp}.crt`))
    await unlink(paths.caKey)
    const fresh = await createCa(paths, o)
    o.log.warn(
      { reason, fingerprint: new X509Certificate(fresh.certPem).fingerprint256 },
      `the host CA was replaced because ${reason}: every phone and browser that trusted the old one must install the new CA from /ca.crt (or /ca.mobileconfig), and paired peer hosts must join this host again`,
    )
    return { ...fresh, created: false, rotated: reason }
  }
  return {
    certPem,
    cert,
    key,
    keyId: cert.generateSubjectKeyIdentifier().getBytes(),
    created: false,
    rotated: null,
  }
}

async function createCa(
  paths: TlsPaths,
  o: { hostname: string; now: Date; log: Logger; dns: string[] },
): Promise<HostCa> {
  const pair = await newRsaKeyPair()
  const key = createPrivateKey(pair.privateKeyPem)
  const cert = forge.pki.createCertificate()
  cert.publicKey = forge.pki.publicKeyFromPem(pair.publicKeyPem)
  cert.serialNumber = randomSerial()
  cert.validity.notBefore = new Date(o.now.getTime() - BACKDATE_MS)
  cert.validity.notAfter = new Date(o.now.getTime() + CA_VALIDITY_DAYS * DAY_MS)
  // The date makes each install's CA name distinct in a phone's list of trusted certificates.
  const subject = [
    {
      name: 'commonName',
      value: `sharedLLM CA ${o.hostname.slice(0, 32)} ${o.now.toISOString().slice(0, 10)}`,
    },
    { name: 'organizationName', value: 'sharedLLM' },
  ]
  cert.setSubject(subject)
  cert.setIssuer(subject)
  cert.setExtensions([
    { name: 'basicConstraints', cA: true, pathLenConstraint: 0, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
    { name: 'subjectKeyIdentifier' },
    nameConstraintsExtension(o.dns),
  ])
  signCertificate(cert, key)
  const certPem = forge.pki.certificateToPem(cert).replace(/\r\n/g, '\n')
  // Crash-safe order: the pending cert, then the key (never overwriting one), then the cert itself.
  await writeFileAtomic(paths.caCertPending, certPem, 0o644)
  await createFileExclusive(paths.caKey, pair.privateKeyPem, 0o600)
  await moveExclusive(paths.caCertPending, paths.caCert)
  o.log.info(
    { file: paths.caCert, fingerprint: new X509Certificate(certPem).fingerprint256 },
    'created host CA',
  )
  return {
    certPem,
    cert,
    key,
    keyId: cert.generateSubjectKeyIdentifier().getBytes(),
    created: true,
    rotated: null,
  }
}

/** ca.key without ca.crt: completes a creation cut short after the key was linked, if the pending cert fits. */
async function finishInterruptedCreate(paths: TlsPaths, key: KeyObject): Promise<string> {
  const pending = await readOptional(paths.caCertPending)
  if (pending === null || !samePublicKey(key, pending)) {
    throw corrupt(paths.caCert, `${paths.caCert} is missing but ${paths.caKey} exists`, 'restore ca.crt')
  }
  await moveExclusive(paths.caCertPending, paths.caCert)
  return pending
}

function samePublicKey(key: KeyObject, certPem: string): boolean {
  try {
    const fromKey = createPublicKey(key).export({ type: 'spki', format: 'der' })
    return new X509Certificate(certPem).publicKey.export({ type: 'spki', format: 'der' }).equals(fromKey)
  } catch {
    return false
  }
}

function parseKey(file: string, pem: string): KeyObject {
  let key: KeyObject
  try {
    key = createPrivateKey(pem)
  } catch (err) {
    throw corrupt(
      file,
      `${file} is not a readable private key (${(err as Error).message})`,
      'restore it',
      err,
    )
  }
  if (key.asymmetricKeyType !== 'rsa') {
    throw corrupt(file, `${file} is a ${key.asymmetricKeyType} key, not the host CA's RSA key`, 'restore it')
  }
  return key
}

function parseCaCert(file: string, pem: string): ForgeCert {
  let cert: ForgeCert
  try {
    cert = forge.pki.certificateFromPem(pem)
  } catch (err) {
    throw corrupt(
      file,
      `${file} is not a readable RSA certificate (${(err as Error).message})`,
      'restore it',
      err,
    )
  }
  const bc = cert.getExtension('basicConstraints') as { cA?: boolean } | null
  if (!bc?.cA) throw corrupt(file, `${file} is not a CA certificate`, 'restore the host CA')
  return cert
}

function corrupt(file: string, message: string, todo: string, cause?: unknown): SharedLLMError {
  return new SharedLLMError(
    'STORE_CORRUPT',
    `${message}; ${todo}, or move the tls directory away to create a new CA (every device must then trust it again)`,
    { cause, details: { file } },
  )
}

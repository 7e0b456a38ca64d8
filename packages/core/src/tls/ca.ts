import { createPrivateKey, createPublicKey, type KeyObject, X509Certificate } from 'node:crypto'
import { SharedLLMError } from '../errors'
import type { Logger } from '../logger'
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

/** How long the CA lasts: phones trust it once, so it outlives many server certificates. */
export const CA_VALIDITY_DAYS = 3650

export interface HostCa {
  certPem: string
  cert: ForgeCert
  key: KeyObject
  /** Subject key identifier, copied into each server certificate's authority key identifier. */
  keyId: string
  created: boolean
}

/**
 * The host's certificate authority: loaded from `tls/ca.crt` + `tls/ca.key`, or created when neither exists.
 * Anything else (one without the other, unreadable, corrupt, not a pair, expired) is an error naming the
 * file: phones trust this CA, so it is never replaced behind the owner's back.
 */
export async function loadOrCreateCa(
  paths: TlsPaths,
  o: { hostname: string; now: Date; log: Logger },
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
  const notAfter = cert.validity.notAfter
  if (notAfter.getTime() <= o.now.getTime()) {
    throw new SharedLLMError(
      'STORE_CORRUPT',
      `the host CA ${paths.caCert} expired on ${notAfter.toISOString()}; move ${paths.caCert} and ${paths.caKey} away to create a new one (every device must then trust the new CA)`,
      { details: { file: paths.caCert } },
    )
  }
  if (notAfter.getTime() - o.now.getTime() < 365 * DAY_MS) {
    o.log.warn({ file: paths.caCert, notAfter }, 'the host CA expires within a year')
  }
  return { certPem, cert, key, keyId: cert.generateSubjectKeyIdentifier().getBytes(), created: false }
}

async function createCa(paths: TlsPaths, o: { hostname: string; now: Date; log: Logger }): Promise<HostCa> {
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
  return { certPem, cert, key, keyId: cert.generateSubjectKeyIdentifier().getBytes(), created: true }
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

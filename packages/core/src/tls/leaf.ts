import { createPublicKey, X509Certificate } from 'node:crypto'
import { canonicalIp, missingSans, type SanSet } from './addresses'
import type { HostCa } from './ca'
import { BACKDATE_MS, DAY_MS, forge, newRsaKeyPair, randomSerial, signCertificate } from './keys'

/** Browsers refuse server certificates valid for more than 398 days; stay one under. */
export const SERVER_VALIDITY_DAYS = 397

export interface IssuedServerCert {
  certPem: string
  keyPem: string
}

/** A fresh key and a server certificate for `sans`, signed by the host CA. */
export async function issueServerCertificate(ca: HostCa, sans: SanSet, now: Date): Promise<IssuedServerCert> {
  const pair = await newRsaKeyPair()
  const cert = forge.pki.createCertificate()
  cert.publicKey = forge.pki.publicKeyFromPem(pair.publicKeyPem)
  cert.serialNumber = randomSerial()
  const notBefore = new Date(now.getTime() - BACKDATE_MS)
  cert.validity.notBefore = notBefore
  cert.validity.notAfter = new Date(notBefore.getTime() + SERVER_VALIDITY_DAYS * DAY_MS)
  // Browsers match only the SANs; the CN is for people, and X.509 caps it at 64 characters.
  const cn = sans.dns[1] ?? 'localhost'
  cert.setSubject([{ name: 'commonName', value: cn.length <= 64 ? cn : 'sharedLLM host' }])
  cert.setIssuer(ca.cert.subject.attributes)
  cert.setExtensions([
    { name: 'basicConstraints', cA: false, critical: true },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', serverAuth: true },
    {
      name: 'subjectAltName',
      altNames: [...sans.dns.map((value) => ({ type: 2, value })), ...sans.ip.map((ip) => ({ type: 7, ip }))],
    },
    { name: 'subjectKeyIdentifier' },
    { name: 'authorityKeyIdentifier', keyIdentifier: ca.keyId },
  ])
  signCertificate(cert, ca.key)
  return { certPem: forge.pki.certificateToPem(cert).replace(/\r\n/g, '\n'), keyPem: pair.privateKeyPem }
}

/** The SANs of a certificate, IPs in canonical form. */
export function certificateSans(cert: X509Certificate): SanSet {
  const dns: string[] = []
  const ip: string[] = []
  // Node prints `DNS:a, IP Address:1.2.3.4`; names with odd characters come JSON-quoted and are skipped.
  for (const entry of (cert.subjectAltName ?? '').split(', ')) {
    if (entry.startsWith('DNS:')) dns.push(entry.slice(4).toLowerCase())
    else if (entry.startsWith('IP Address:')) {
      const c = canonicalIp(entry.slice(11))
      if (c !== null) ip.push(c)
    }
  }
  return { dns, ip }
}

/**
 * Why the stored server certificate must be reissued, or null when it is still good: readable, paired with
 * its key, signed by this CA, valid now and for more than `renewBeforeDays`, and covering `wanted`.
 */
export function reissueReason(
  stored: { certPem: string | null; keyPem: string | null },
  caCertPem: string,
  wanted: SanSet,
  now: Date,
  renewBeforeDays: number,
): string | null {
  if (stored.certPem === null || stored.keyPem === null) return 'no server certificate yet'
  let cert: X509Certificate
  try {
    cert = new X509Certificate(stored.certPem)
  } catch {
    return 'server.crt is unreadable'
  }
  try {
    const keySpki = createPublicKey(stored.keyPem).export({ type: 'spki', format: 'der' })
    if (!keySpki.equals(cert.publicKey.export({ type: 'spki', format: 'der' }))) {
      return 'server.key does not match server.crt'
    }
  } catch {
    return 'server.key is unreadable'
  }
  const ca = new X509Certificate(caCertPem)
  if (!cert.checkIssued(ca) || !cert.verify(ca.publicKey)) return 'server.crt is not signed by the host CA'
  if (new Date(cert.validFrom).getTime() > now.getTime()) return 'server.crt is not valid yet'
  const notAfter = new Date(cert.validTo).getTime()
  if (notAfter <= now.getTime()) return 'server.crt has expired'
  if (notAfter - now.getTime() < renewBeforeDays * DAY_MS)
    return `server.crt expires within ${renewBeforeDays} days`
  const missing = missingSans(certificateSans(cert), wanted)
  if (missing.length > 0) return `server.crt does not cover ${missing.join(', ')}`
  return null
}

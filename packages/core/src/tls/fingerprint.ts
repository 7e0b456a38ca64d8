import { createHash, X509Certificate } from 'node:crypto'
import { SharedLLMError } from '../errors'

/** Parses the first certificate of a PEM (or DER) blob; a bad one is a VALIDATION error naming `what`. */
export function parseCertificate(pem: string | Buffer, what = 'certificate'): X509Certificate {
  try {
    return new X509Certificate(pem)
  } catch (err) {
    throw new SharedLLMError('VALIDATION', `${what} is not a readable X.509 certificate`, { cause: err })
  }
}

/**
 * SHA-256 of the certificate's DER as uppercase colon-separated hex (`AB:CD:…`), the form Chrome, Firefox,
 * Safari's certificate sheets and `openssl x509 -fingerprint -sha256` show, so the owner can compare by eye.
 */
export function certificateFingerprint(pem: string): string {
  return parseCertificate(pem).fingerprint256
}

/** Base64 SHA-256 of the SubjectPublicKeyInfo: what Chromium's `--ignore-certificate-errors-spki-list` takes. */
export function spkiSha256Base64(pem: string): string {
  const spki = parseCertificate(pem).publicKey.export({ type: 'spki', format: 'der' })
  return createHash('sha256').update(spki).digest('base64')
}

const HEX64 = /^[0-9A-F]{64}$/

/**
 * A SHA-256 fingerprint as typed or advertised (any case, with or without colons or spaces) in the canonical
 * colon form, or null when it is not one.
 */
export function normalizeFingerprint(input: string): string | null {
  const hex = input.replace(/[\s:]/g, '').toUpperCase()
  if (!HEX64.test(hex)) return null
  return hex.match(/../g)!.join(':')
}

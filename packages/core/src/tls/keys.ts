import { generateKeyPair, type KeyObject, randomBytes, sign } from 'node:crypto'
import { promisify } from 'node:util'
import forge from 'node-forge'

const generate = promisify(generateKeyPair)

export interface RsaKeyPair {
  /** PKCS#8 PEM (`BEGIN PRIVATE KEY`). */
  privateKeyPem: string
  /** SPKI PEM (`BEGIN PUBLIC KEY`). */
  publicKeyPem: string
}

/** RSA 2048 by OpenSSL (off the main thread); node-forge's pure-JS generator takes seconds. */
export async function newRsaKeyPair(): Promise<RsaKeyPair> {
  const { privateKey, publicKey } = await generate('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  })
  return { privateKeyPem: privateKey, publicKeyPem: publicKey }
}

/** A random positive 128-bit serial (RFC 5280: ≤ 20 octets, positive, unpredictable). */
export function randomSerial(): string {
  const bytes = randomBytes(16)
  bytes[0] = (bytes[0]! & 0x7f) | 0x01
  return bytes.toString('hex')
}

export const DAY_MS = 24 * 60 * 60 * 1000

/** Certificates start a little in the past so a phone whose clock lags the host still accepts them. */
export const BACKDATE_MS = 60 * 60 * 1000

export type ForgeCert = forge.pki.Certificate

/**
 * Signs a node-forge certificate (sha256WithRSAEncryption) with OpenSSL through node:crypto: forge builds
 * the ASN.1, but its JavaScript RSA takes ~0.4 s per signature on a small machine.
 */
export function signCertificate(cert: ForgeCert, key: KeyObject): void {
  const chunks: string[] = []
  // forge hands the DER of the TBSCertificate to md.update as a binary string, then asks key.sign(md).
  const md = {
    algorithm: 'sha256',
    update(bytes: string) {
      chunks.push(bytes)
      return md
    },
  }
  const signer = {
    sign: () => sign('sha256', Buffer.from(chunks.join(''), 'binary'), key).toString('binary'),
  }
  cert.sign(signer as unknown as forge.pki.rsa.PrivateKey, md as unknown as forge.md.MessageDigest)
}
export { forge }

import { createHash, randomBytes, randomInt, timingSafeEqual } from 'node:crypto'

/** Prefix of device keys, so a leaked key is recognisable in logs and secret scanners. */
export const DEVICE_KEY_PREFIX = 'sllm_'
export const ADMIN_SECRET_PREFIX = 'sllm_admin_'

/** 256 random bits, base64url, with a prefix. */
export function newToken(prefix = ''): string {
  return prefix + randomBytes(32).toString('base64url')
}

export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex')
}

/** Constant-time comparison of two hex digests. */
export function sameHash(a: string, b: string): boolean {
  const x = Buffer.from(a, 'hex')
  const y = Buffer.from(b, 'hex')
  return x.length === y.length && x.length > 0 && timingSafeEqual(x, y)
}

/** 20 letters without look-alikes (no I, L, O, U, 0, 1 …): easy to read aloud and type on a phone. */
export const PAIRING_ALPHABET = 'ACDEFGHJKMNPQRTVWXYZ'
export const PAIRING_CODE_LENGTH = 10

export function newPairingCode(): string {
  let s = ''
  for (let i = 0; i < PAIRING_CODE_LENGTH; i++) s += PAIRING_ALPHABET[randomInt(PAIRING_ALPHABET.length)]
  return s
}

/** Upper-cases and drops spaces/dashes so `acde-fghj kmnp` matches `ACDEFGHJKMNP`. */
export function normalisePairingCode(code: string): string {
  return code.toUpperCase().replace(/[\s-]/g, '')
}

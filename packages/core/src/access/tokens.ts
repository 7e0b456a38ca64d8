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
/**
 * The first letters of a pairing code name it (they are not secret; the other 8 letters are, 20^8 ≈ 2.6e10):
 * a wrong try with a live code's id costs that code one attempt, and no other.
 */
export const PAIRING_ID_LENGTH = 2

function letters(n: number): string {
  let s = ''
  for (let i = 0; i < n; i++) s += PAIRING_ALPHABET[randomInt(PAIRING_ALPHABET.length)]
  return s
}

/** A new code whose id is not one of `takenIds` (when the 400 ids allow it). */
export function newPairingCode(takenIds: ReadonlySet<string> = new Set()): string {
  let id = letters(PAIRING_ID_LENGTH)
  for (let i = 0; i < 50 && takenIds.has(id); i++) id = letters(PAIRING_ID_LENGTH)
  return id + letters(PAIRING_CODE_LENGTH - PAIRING_ID_LENGTH)
}

/** The id part of a (normalised) code. */
export function pairingIdOf(code: string): string {
  return code.slice(0, PAIRING_ID_LENGTH)
}

/** Upper-cases and drops spaces/dashes so `acde-fghj kmnp` matches `ACDEFGHJKMNP`. */
export function normalisePairingCode(code: string): string {
  return code.toUpperCase().replace(/[\s-]/g, '')
}

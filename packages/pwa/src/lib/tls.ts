import type { TlsInfoResponse } from '@sharedllm/core/protocol'

/** Browsers treat these as secure even over plain HTTP, so the app installs there without the CA. */
export function isLoopbackHost(hostname: string): boolean {
  const h = hostname.replace(/^\[|\]$/g, '').toLowerCase()
  return h === 'localhost' || h.endsWith('.localhost') || /^127\./.test(h) || h === '::1'
}

/** Whether this page needs the host certificate before the app can be installed (HTTP at a LAN address). */
export function needsCertificate(loc: Pick<Location, 'hostname'>, secure: boolean): boolean {
  return !secure && !isLoopbackHost(loc.hostname)
}

/**
 * Where a device that does not trust the CA yet downloads it: plain HTTP on a LAN name (a phone cannot
 * use `localhost`, and HTTPS would show a certificate error before the CA is installed).
 */
export function caDownloadUrl(
  info: TlsInfoResponse,
  file: 'ca.crt' | 'ca.mobileconfig' = 'ca.crt',
): string | null {
  const first = info.https_urls[0]
  if (!first || info.http_port === null) return null
  const u = new URL(first)
  u.protocol = 'http:'
  u.port = String(info.http_port)
  u.pathname = `/${file}`
  return u.href
}

/** The app over HTTPS at the host's LAN name, keeping `path` (e.g. `/join?code=…`). */
export function secureUrl(info: TlsInfoResponse, path: string, preferHost?: string): string | null {
  const candidates = info.https_urls.map((u) => new URL(u))
  const pick = candidates.find((u) => preferHost && u.hostname === preferHost) ?? candidates[0]
  return pick ? new URL(path, pick).href : null
}

/** A short platform word for the join request, from what the browser says about itself. */
export function detectPlatform(nav: Pick<Navigator, 'userAgent'> = navigator): string {
  const ua = nav.userAgent
  if (/iPhone|iPod/.test(ua)) return 'ios'
  if (/iPad/.test(ua) || (/Macintosh/.test(ua) && /Mobile/.test(ua))) return 'ipados'
  if (/Android/.test(ua)) return 'android'
  if (/CrOS/.test(ua)) return 'chromeos'
  if (/Windows/.test(ua)) return 'windows'
  if (/Macintosh|Mac OS X/.test(ua)) return 'macos'
  if (/Linux/.test(ua)) return 'linux'
  return 'web'
}

const NAMES: Record<string, string> = {
  ios: 'iPhone',
  ipados: 'iPad',
  android: 'Android phone',
  chromeos: 'Chromebook',
  windows: 'Windows PC',
  macos: 'Mac',
  linux: 'Linux computer',
  web: 'Browser',
}

/** The name prefilled on "Request access", e.g. `Android phone (Chrome)`. */
export function suggestedDeviceName(nav: Pick<Navigator, 'userAgent'> = navigator): string {
  const ua = nav.userAgent
  const browser = /Edg\//.test(ua)
    ? 'Edge'
    : /Firefox\//.test(ua)
      ? 'Firefox'
      : /Chrom(e|ium)\//.test(ua)
        ? 'Chrome'
        : /Safari\//.test(ua)
          ? 'Safari'
          : null
  const base = NAMES[detectPlatform(nav)] ?? 'Browser'
  return browser ? `${base} (${browser})` : base
}

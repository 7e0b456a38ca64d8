const MiB = 1024 * 1024

/** `1536 MiB` → `1.5 GiB`; sizes under a GiB stay in MiB. */
export function formatMb(mb: number): string {
  if (!Number.isFinite(mb)) return '—'
  if (Math.abs(mb) >= 1024) return `${(mb / 1024).toFixed(mb % 1024 === 0 ? 0 : 1)} GiB`
  return `${Math.round(mb)} MiB`
}

export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes) || bytes < 0) return '—'
  if (bytes < 1024) return `${bytes} B`
  if (bytes < MiB) return `${(bytes / 1024).toFixed(0)} KiB`
  return formatMb(bytes / MiB)
}

export const bytesToMb = (bytes: number) => Math.floor(bytes / MiB)

/** `1234567` → `1,234,567`: token and request counts, grouped the same way in every browser. */
export const formatCount = (n: number) => n.toLocaleString('en')

export function formatTime(ms: number | null): string {
  if (ms == null) return 'never'
  return new Date(ms).toLocaleString()
}

export function timeAgo(ms: number | null, now = Date.now()): string {
  if (ms == null) return 'never'
  const s = Math.max(0, Math.round((now - ms) / 1000))
  if (s < 60) return `${s}s ago`
  if (s < 3600) return `${Math.round(s / 60)} min ago`
  if (s < 86400) return `${Math.round(s / 3600)} h ago`
  return `${Math.round(s / 86400)} d ago`
}

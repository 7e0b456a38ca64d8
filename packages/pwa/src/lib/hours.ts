import type { AllowedHours } from '@sharedllm/core/protocol'

const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat']
const dayIndex = (s: string) => DAYS.findIndex((d) => d.toLowerCase() === s.slice(0, 3).toLowerCase())

/**
 * The owner's way to write a weekly schedule, one window a line: `Mon-Fri 16:00-20:00`, `Sat,Sun 09:00-21:00`,
 * `Mon 22:00-02:00` (past midnight). Empty: null. The API checks overlaps and times and names the window.
 */
export function parseHours(text: string): { value: AllowedHours | null } | { error: string } {
  const lines = text
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
  if (lines.length === 0) return { value: null }
  const out: AllowedHours = []
  for (const [i, line] of lines.entries()) {
    const m = /^([A-Za-z,\s-]+?)\s+(\d{1,2}:\d{2})\s*-\s*(\d{1,2}:\d{2})$/.exec(line)
    if (!m) return { error: `line ${i + 1}: write it as “Mon-Fri 16:00-20:00”` }
    const days = new Set<number>()
    for (const part of m[1]!
      .split(',')
      .map((p) => p.trim())
      .filter(Boolean)) {
      const [a, b] = part.split('-').map((p) => dayIndex(p.trim()))
      if (a === undefined || a < 0 || (b !== undefined && b < 0))
        return { error: `line ${i + 1}: “${part}” is not a day (Mon, Tue, … Sun)` }
      if (b === undefined) days.add(a)
      else
        for (let d = a; ; d = (d + 1) % 7) {
          days.add(d)
          if (d === b) break
        }
    }
    const pad = (t: string) => t.padStart(5, '0')
    out.push({ days: [...days].sort((x, y) => x - y), from: pad(m[2]!), to: pad(m[3]!) })
  }
  return { value: out }
}

/** The schedule back as lines for the editor (`Mon-Fri 16:00-20:00`). */
export function formatHours(hours: AllowedHours | null): string {
  if (!hours) return ''
  return hours.map((w) => `${formatDays(w.days)} ${w.from}-${w.to}`).join('\n')
}

function formatDays(days: number[]): string {
  const sorted = [...new Set(days)].sort((a, b) => a - b)
  const runs: string[] = []
  for (let i = 0; i < sorted.length; ) {
    let j = i
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j]! + 1) j++
    runs.push(j > i ? `${DAYS[sorted[i]!]}-${DAYS[sorted[j]!]}` : DAYS[sorted[i]!]!)
    i = j + 1
  }
  return runs.join(',')
}

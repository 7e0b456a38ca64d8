import { readdirSync, readFileSync, statSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { expect, it } from 'vitest'

const src = fileURLToPath(new URL('../src/', import.meta.url))

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name)
    return statSync(p).isDirectory() ? files(p) : p.endsWith('.ts') ? [p] : []
  })
}

/** Every module specifier a file imports or re-exports (static and dynamic). */
function imports(file: string): string[] {
  const text = readFileSync(file, 'utf8')
  const out: string[] = []
  for (const m of text.matchAll(/(?:^|\n)\s*(?:import|export)\b[^'"]*?from\s*['"]([^'"]+)['"]/g))
    out.push(m[1] as string)
  for (const m of text.matchAll(/(?:^|\n)\s*import\s*['"]([^'"]+)['"]/g)) out.push(m[1] as string)
  for (const m of text.matchAll(/\bimport\(\s*['"]([^'"]+)['"]\s*\)/g)) out.push(m[1] as string)
  return out
}

it('core knows no HTTP framework, no WebSocket library and no UI framework', () => {
  const all = files(src)
  expect(all.length).toBeGreaterThan(50)
  const banned = /^(express|express-ws|ws|vue|pinia|vue-router|naive-ui|fastify|koa|hono)(\/|$)/
  const offenders = all.flatMap((f) =>
    imports(f)
      .filter((s) => banned.test(s))
      .map((s) => `${f}: ${s}`),
  )
  expect(offenders).toEqual([])
})

it('@sharedllm/core/protocol imports no node: module, directly or through what it imports', () => {
  const seen = new Set<string>()
  const offenders: string[] = []
  const visit = (file: string) => {
    if (seen.has(file)) return
    seen.add(file)
    for (const s of imports(file)) {
      if (s.startsWith('node:') || /^(fs|path|os|http|https|net|crypto|child_process|stream|url)$/.test(s)) {
        offenders.push(`${file}: ${s}`)
      } else if (s.startsWith('.')) {
        const base = resolve(dirname(file), s)
        const target = [`${base}.ts`, join(base, 'index.ts')].find((p) => {
          try {
            return statSync(p).isFile()
          } catch {
            return false
          }
        })
        if (!target) throw new Error(`cannot resolve ${s} from ${file}`)
        visit(target)
      } else {
        offenders.push(`${file}: package ${s} (the protocol must be browser-safe and dependency-free)`)
      }
    }
  }
  visit(join(src, 'protocol', 'index.ts'))
  expect(seen.size).toBeGreaterThan(3)
  expect(offenders).toEqual([])
})

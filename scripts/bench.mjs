#!/usr/bin/env node
// `pnpm bench [name ...]`: runs bench/<name>.ts (all of them when none is named) with tsx.
// Each bench prints a table and writes bench/results/<name>.json.
import { spawnSync } from 'node:child_process'
import { readdirSync } from 'node:fs'
import { join } from 'node:path'

const root = new URL('..', import.meta.url).pathname
const all = readdirSync(join(root, 'bench'))
  .filter((f) => f.endsWith('.ts') && !f.startsWith('_'))
  .map((f) => f.slice(0, -3))
const names = process.argv.slice(2).length > 0 ? process.argv.slice(2) : all
let failed = 0
for (const name of names) {
  if (!all.includes(name)) {
    console.error(`unknown bench '${name}'; known: ${all.join(', ')}`)
    process.exit(2)
  }
  console.log(`\n=== bench ${name}`)
  const tsx = join(root, 'node_modules', 'tsx', 'dist', 'cli.mjs')
  const res = spawnSync(process.execPath, [tsx, join(root, 'bench', `${name}.ts`)], {
    cwd: root,
    stdio: 'inherit',
  })
  if (res.status !== 0) failed++
}
process.exit(failed ? 1 : 0)

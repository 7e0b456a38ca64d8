#!/usr/bin/env node
// The repo's test command: build every package, run every vitest project, and end with one plain line
// `N passed, N failed` (CI reads it; a run that executed no test is visible as `0 passed`).
import { spawnSync } from 'node:child_process'
import { mkdirSync, readFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'

const root = new URL('..', import.meta.url).pathname
const pnpm = process.env.npm_execpath
const run = (cmd, args) => spawnSync(cmd, args, { cwd: root, stdio: 'inherit', env: process.env })

// pnpm 12's npm_execpath is a native executable; older ones are JavaScript run by node.
const build = !pnpm
  ? run('npx', ['-y', 'pnpm@12.21.0', 'build'])
  : /\.[cm]?js$/.test(pnpm)
    ? run(process.execPath, [pnpm, 'build'])
    : run(pnpm, ['build'])
if (build.status !== 0) {
  console.log('0 passed, 1 failed')
  process.exit(1)
}

const artifacts = join(root, 'test-artifacts')
mkdirSync(artifacts, { recursive: true })
const report = join(artifacts, 'vitest.json')
rmSync(report, { force: true })
const vitest = join(root, 'node_modules', 'vitest', 'vitest.mjs')
const res = run(process.execPath, [
  vitest,
  'run',
  '--reporter=default',
  '--reporter=json',
  `--outputFile.json=${report}`,
  ...process.argv.slice(2),
])

let passed = 0
let failed = 0
let skipped = 0
try {
  const json = JSON.parse(readFileSync(report, 'utf8'))
  passed = json.numPassedTests
  failed = json.numFailedTests + (json.numRuntimeErrorTestSuites ?? 0)
  skipped = json.numPendingTests + json.numTodoTests
  // A file that failed to load has no tests but must count as a failure.
  for (const file of json.testResults ?? [])
    if (file.status === 'failed' && file.assertionResults.length === 0) failed++
} catch {
  failed = Math.max(failed, 1)
}
if (res.status !== 0 && failed === 0) failed = 1
console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`)
process.exit(res.status === 0 && failed === 0 ? 0 : 1)

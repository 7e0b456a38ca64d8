import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { BUILTIN_PROVIDER_PACKAGES, isSharedLLMError, loadProvidersDetailed } from '@sharedllm/core'
import { createFakeHost } from '@sharedllm/core/testing'
import { expect, test } from 'vitest'

/** server-express depends on the five built-in packages, as an app embedding core would. */
const serverDir = fileURLToPath(new URL('../../server-express/', import.meta.url))
/** Load workspace packages from their TypeScript sources, as the rest of the tests do. */
const conditions = ['@sharedllm/source', 'import', 'default']

function fakePackage(
  root: string,
  name: string,
  code: string,
  exportsField: unknown = { '.': { import: './index.js' } },
) {
  const dir = join(root, 'node_modules', name)
  mkdirSync(dir, { recursive: true })
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name, type: 'module', exports: exportsField }))
  writeFileSync(join(dir, 'index.js'), code)
}

test('loads the five built-in packages by name from an app directory (a file URL works too)', async () => {
  const r = await loadProvidersDetailed(BUILTIN_PROVIDER_PACKAGES, {
    resolveFrom: [pathToFileURL(join(serverDir, 'package.json')).href],
    conditions,
  })
  expect(r.missing).toEqual([])
  expect(r.broken).toEqual([])
  expect(r.providers.map((p) => p.name)).toEqual(['nvidia', 'amd', 'apple', 'intel', 'ram'])
  expect(r.providers.find((p) => p.name === 'apple')!.supersedes).toEqual(['ram'])
})

test('a missing package is skipped, a broken one and a non-provider are reported, a plain definition is wrapped', async () => {
  const root = mkdtempSync(join(tmpdir(), 'sllm-load-'))
  fakePackage(root, 'sllm-broken', 'throw new Error("top-level boom")\n')
  fakePackage(root, 'sllm-not-provider', 'export const foo = 1\n')
  fakePackage(
    root,
    '@acme/sllm-plain',
    'export default { name: "plain", priority: 5, snapshot: () => [{ localId: "x", name: "X", kind: "system", totalBytes: 10, usedBytes: 4 }] }\n',
    './index.js',
  )
  const logs: string[] = []
  const log = {
    debug() {},
    info: (o: unknown, m?: string) => logs.push(`info ${JSON.stringify(o)} ${m}`),
    warn() {},
    error: (o: unknown, m?: string) => logs.push(`error ${JSON.stringify(o)} ${m}`),
    child() {
      return log
    },
  }
  const r = await loadProvidersDetailed(
    ['sllm-missing', 'sllm-broken', 'sllm-not-provider', '@acme/sllm-plain', 'Not A Name'],
    { resolveFrom: [root], log },
  )
  expect(r.missing).toEqual(['sllm-missing'])
  expect(r.broken.map((b) => [b.name, b.error.code])).toEqual([
    ['sllm-broken', 'PROVIDER_FAILED'],
    ['sllm-not-provider', 'VALIDATION'],
    ['Not A Name', 'VALIDATION'],
  ])
  expect(r.broken[0]!.error.message).toMatch(/top-level boom/)
  expect(isSharedLLMError(r.broken[0]!.error.cause)).toBe(false)
  expect(r.providers.map((p) => [p.name, p.priority])).toEqual([['plain', 5]])
  expect(await r.providers[0]!.snapshot(createFakeHost())).toEqual([
    { id: 'plain:x', name: 'X', kind: 'system', totalBytes: 10, usedBytes: 4, freeBytes: 6 },
  ])
  expect(logs.some((l) => l.startsWith('info') && l.includes('sllm-missing'))).toBe(true)
  expect(logs.filter((l) => l.startsWith('error'))).toHaveLength(3)
})

test('resolveFrom locations are tried in order before the working directory', async () => {
  const first = mkdtempSync(join(tmpdir(), 'sllm-load-a-'))
  const second = mkdtempSync(join(tmpdir(), 'sllm-load-b-'))
  const def = (n: string) => `export const provider = { name: "${n}", snapshot: () => [] }\n`
  fakePackage(first, 'sllm-twice', def('first'))
  fakePackage(second, 'sllm-twice', def('second'))
  const r = await loadProvidersDetailed(['sllm-twice'], { resolveFrom: [join(second, 'sub', 'dir'), first] })
  expect(r.providers.map((p) => p.name)).toEqual(['second'])
})

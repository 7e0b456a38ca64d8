import { mkdirSync, mkdtempSync, symlinkSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { loadProvidersDetailed } from '@sharedllm/core'
import { createFakeHost, runProviderConformance } from '@sharedllm/core/testing'
import { expect, test } from 'vitest'
import { createPoolProvider } from '../src/index'

const FILE = '/etc/sharedllm/pools.json'
const pools = JSON.stringify({
  devices: [
    { id: 'box0', name: 'eGPU box', totalMiB: 24576, usedMiB: 1024 },
    { id: 'box1', name: 'Second box', totalMiB: 16384, usedMiB: 0 },
  ],
})

runProviderConformance(test, {
  provider: () => createPoolProvider(FILE),
  availableHost: () => createFakeHost({ files: { [FILE]: pools } }),
  capabilities: { kinds: ['dedicated'], deviceCount: 2, execOnSnapshot: false },
})

test('sharedLLM loads it by package name, as from the extra_providers setting', async () => {
  // Install the package into an app's node_modules the way npm would (a link to this folder).
  const app = mkdtempSync(join(tmpdir(), 'sllm-app-'))
  const pkgDir = dirname(fileURLToPath(new URL('../package.json', import.meta.url)))
  mkdirSync(join(app, 'node_modules'), { recursive: true })
  symlinkSync(pkgDir, join(app, 'node_modules', 'sharedllm-provider-example'))
  const r = await loadProvidersDetailed(['sharedllm-provider-example'], {
    resolveFrom: [app],
    conditions: ['@sharedllm/source', 'import', 'default'],
  })
  expect(r.broken).toEqual([])
  const [provider] = r.providers
  expect(provider?.name).toBe('pools')
  const host = createFakeHost({ files: { [FILE]: pools } })
  expect(await provider!.snapshot(host)).toMatchObject([
    { id: 'pools:box0', totalBytes: 24576 * 2 ** 20, usedBytes: 2 ** 30 },
    { id: 'pools:box1', freeBytes: 16384 * 2 ** 20 },
  ])
})

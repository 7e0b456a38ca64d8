import { project } from '../../vitest.shared.ts'

// Real Chromium against the real server: one file at a time, generous timeouts for a 2-core machine.
const config = project('pwa-e2e', {
  test: { environment: 'node', testTimeout: 60_000, hookTimeout: 90_000, fileParallelism: false },
})
// mergeConfig concatenates arrays, so the shared `test/**/*.test.ts` is replaced here rather than merged.
config.test!.include = ['test/e2e/**/*.e2e.test.ts']
export default config

import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    projects: [
      'packages/*/vitest.config.ts',
      'examples/*/vitest.config.ts',
      'packages/pwa/vitest.e2e.config.ts',
      'release/vitest.config.ts',
    ],
  },
})

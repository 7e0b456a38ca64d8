import { defineProject, mergeConfig, type UserWorkspaceConfig } from 'vitest/config'

/** Workspace packages resolve to their TypeScript sources in tests, so no build is needed first. */
const sourceCondition = '@sharedllm/source'

export function project(name: string, extra: UserWorkspaceConfig = {}) {
  return mergeConfig(
    defineProject({
      resolve: { conditions: [sourceCondition, 'module', 'node', 'import', 'default'] },
      // Vitest hands ssr.resolve.conditions to Node as --conditions: 'import' there would make a CommonJS
      // require() of a dual package (is-promise, under Express's router) load its ESM build.
      ssr: { resolve: { conditions: [sourceCondition, 'node'], externalConditions: [sourceCondition] } },
      test: { name, include: ['test/**/*.test.ts'], testTimeout: 20_000, hookTimeout: 30_000 },
    }),
    extra,
  )
}

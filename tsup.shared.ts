import { defineConfig, type Options } from 'tsup'

/** The build every library package shares: ESM for Node 20 with .d.ts; packages add entries and externals. */
export function libraryConfig(
  entry: Record<string, string> = { index: 'src/index.ts' },
  extra: Options = {},
) {
  return defineConfig({
    entry,
    format: ['esm'],
    dts: true,
    clean: true,
    sourcemap: true,
    target: 'node20',
    ...extra,
  })
}

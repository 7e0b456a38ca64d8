import { gzipSync } from 'node:zlib'
import type { Plugin, Rolldown } from 'vite'

type OutputBundle = Rolldown.OutputBundle
type OutputChunk = Rolldown.OutputChunk

/** Gzip bytes of the entry chunks and everything they import statically (what the first paint loads). */
export function initialJsGzipBytes(bundle: OutputBundle): { bytes: number; files: string[] } {
  const chunks = new Map<string, OutputChunk>()
  for (const item of Object.values(bundle)) if (item.type === 'chunk') chunks.set(item.fileName, item)
  const seen = new Set<string>()
  const visit = (file: string) => {
    if (seen.has(file)) return
    const chunk = chunks.get(file)
    if (!chunk) return
    seen.add(file)
    for (const dep of chunk.imports) visit(dep)
  }
  for (const chunk of chunks.values()) if (chunk.isEntry) visit(chunk.fileName)
  let bytes = 0
  for (const file of seen) bytes += gzipSync(chunks.get(file)!.code, { level: 9 }).length
  return { bytes, files: [...seen].sort() }
}

/** Prints the initial JavaScript size after a build and fails the build when it exceeds the budget. */
export function bundleBudget(limitKb = 200): Plugin {
  return {
    name: 'sharedllm-bundle-budget',
    apply: 'build',
    generateBundle(_options, bundle) {
      const { bytes, files } = initialJsGzipBytes(bundle)
      const kb = bytes / 1024
      const line = `initial JS: ${kb.toFixed(1)} KB gzip (budget ${limitKb} KB) in ${files.length} file(s): ${files.join(', ')}`
      if (kb > limitKb) this.error(`${line}: over budget`)
      console.log(`\n${line}`)
    },
  }
}

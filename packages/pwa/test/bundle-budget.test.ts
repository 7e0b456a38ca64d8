import { describe, expect, it } from 'vitest'
import { initialJsGzipBytes } from '../build/bundle-budget'

describe('initialJsGzipBytes', () => {
  it('counts the entry and its static imports, not lazy chunks', () => {
    const chunk = (fileName: string, code: string, imports: string[] = [], isEntry = false) => ({
      type: 'chunk' as const,
      fileName,
      code,
      imports,
      isEntry,
    })
    const bundle = {
      'index.js': chunk('index.js', 'a'.repeat(1000), ['vendor.js'], true),
      'vendor.js': chunk('vendor.js', 'b'.repeat(1000)),
      'lazy.js': chunk('lazy.js', 'c'.repeat(100_000), ['vendor.js']),
      'style.css': { type: 'asset' as const, fileName: 'style.css', source: 'x' },
    }
    const { files, bytes } = initialJsGzipBytes(bundle as never)
    expect(files).toEqual(['index.js', 'vendor.js'])
    expect(bytes).toBeGreaterThan(0)
    expect(bytes).toBeLessThan(200)
  })
})

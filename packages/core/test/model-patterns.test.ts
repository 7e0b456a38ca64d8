import fc from 'fast-check'
import { describe, expect, test } from 'vitest'
import { globMatch, modelAllowed } from '../src/gateway/patterns'

describe('model patterns: * stays within one path segment', () => {
  test.each([
    [['smollm2*'], 'smollm2', true],
    [['smollm2*'], 'smollm2:135m', true],
    [['smollm2*'], 'smollm2-attacker/backdoored-model', false],
    [['smollm2*'], 'smollm2-attacker/backdoored-model:latest', false],
    [['llama3*'], 'llama3/../evil:latest', false],
    // `library/llama3:8b` is `llama3:8b` as Ollama resolves it (types/model/name.go), so it is one segment.
    [['*'], 'library/llama3:8b', true],
    [['*'], 'someone/llama3:8b', false],
    [['*'], 'llama3:8b', true],
    [['hf.co/bartowski/*'], 'hf.co/bartowski/qwen:q4', true],
    [['hf.co/bartowski/*'], 'hf.co/bartowski/qwen/extra:q4', false],
    [['hf.co/**'], 'hf.co/bartowski/qwen:q4', true],
    [['*/llama3:8b'], 'registry.example/ns/llama3:8b', false],
    [['*/*/llama3:8b'], 'registry.example/ns/llama3:8b', true],
  ])('%j admits %s: %s', (patterns, model, expected) => {
    expect(modelAllowed(patterns, model)).toBe(expected)
  })
})

describe('globMatch', () => {
  // The RegExp the matcher replaced, as the reference on inputs too short to backtrack for long.
  const reference = (pattern: string, text: string) =>
    new RegExp(
      `^${pattern
        .replace(/[.+?^${}()|[\]\\]/g, '\\$&')
        .split('**')
        .map((part) => part.replace(/\*/g, '[^/]*'))
        .join('.*')}$`,
    ).test(text)

  test('agrees with the RegExp on every short pattern and name', () => {
    const ch = fc.constantFrom('a', 'b', '/', ':', '.', '*')
    fc.assert(
      fc.property(fc.string({ unit: ch, maxLength: 8 }), fc.string({ unit: ch, maxLength: 10 }), (p, t) => {
        expect(globMatch(p, t.replace(/\*/g, 'a'))).toBe(reference(p, t.replace(/\*/g, 'a')))
      }),
      { numRuns: 3000 },
    )
  })

  test('a pattern built to backtrack is answered (the RegExp took seconds on it, minutes on a longer one)', () => {
    const pattern = `${'**a'.repeat(12)}**b`
    expect(globMatch(pattern, `${'a'.repeat(40)}:latest`)).toBe(false)
    expect(globMatch(pattern, `${'a'.repeat(40)}b`)).toBe(true)
    expect(modelAllowed([pattern], `${'a'.repeat(40)}:latest`)).toBe(false)
  })
})

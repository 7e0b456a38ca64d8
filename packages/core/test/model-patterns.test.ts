import { describe, expect, test } from 'vitest'
import { modelAllowed } from '../src/gateway/patterns'

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

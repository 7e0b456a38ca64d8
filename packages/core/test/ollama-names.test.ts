import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, test } from 'vitest'
import { isSharedLLMError } from '../src/errors'
import {
  canonicalModelName,
  MAX_MODEL_NAME_LENGTH,
  PullAggregate,
  sameModel,
  validateModelName,
} from '../src/ollama/index'
import { loopbackListenAddress } from '../src/ollama/index'
import { fakeOllamaDir } from '../src/testing/fake-ollama'

const fixture = (name: string) => readFileSync(join(fakeOllamaDir, 'fixtures', name), 'utf8')

describe('validateModelName', () => {
  test.each([
    'llama3.2',
    'qwen2.5:7b',
    'qwen2.5-coder:7b-instruct-q8_0',
    'shaw/dmeta-embedding-zh',
    'registry.ollama.ai/library/llama3:8b',
    'deepseek-r1:1.5b',
  ])('accepts %s', (name) => {
    expect(validateModelName(name)).toBe(name)
  })

  test('accepts every name in the captured /api/tags', () => {
    const { models } = JSON.parse(fixture('api-tags-16-models-local.json')) as { models: { name: string }[] }
    for (const m of models) expect(validateModelName(m.name)).toBe(m.name)
  })

  test.each([
    ['', /empty/],
    ['   ', /empty/],
    ['../etc/passwd', /"\.\." segment/],
    ['a/../../b', /"\.\." segment/],
    ['/abs/model', /starts with "\/"/],
    ['a\\b', /backslash/],
    ['llama 3', /only letters/],
    ['llama%2F..', /only letters/],
    ['llama\n3', /only letters/],
    ['a//b', /namespace ""/],
    ['model:', /tag/],
    ['model:tag:extra', /tag/],
    ['-model', /must start/],
    ['x'.repeat(MAX_MODEL_NAME_LENGTH + 1), /longer than 200/],
  ])('refuses %j', (name, why) => {
    try {
      validateModelName(name)
      expect.unreachable()
    } catch (err) {
      expect(isSharedLLMError(err, 'VALIDATION')).toBe(true)
      expect((err as Error).message).toMatch(why)
    }
  })

  test.each([[42], [null], [undefined], [{ name: 'x' }]])('refuses non-strings (%j)', (value) => {
    expect(() => validateModelName(value)).toThrow(/expected a string/)
  })

  test('llama3 and llama3:latest are the same model', () => {
    expect(canonicalModelName('llama3')).toBe('llama3:latest')
    expect(canonicalModelName('ns/llama3')).toBe('ns/llama3:latest')
    expect(sameModel('llama3', 'llama3:latest')).toBe(true)
    expect(sameModel('llama3', 'llama3:8b')).toBe(false)
  })
})

describe('PullAggregate over the captured pull stream', () => {
  const lines = (name: string) =>
    fixture(name)
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l))

  test('sums completed over total across distinct digests; repeats do not double count', () => {
    const agg = new PullAggregate('m')
    const head = lines('api-pull-stream-head-fragment.txt')
    const tail = lines('api-pull-stream-tail-fragment.txt')
    expect(agg.add(head[0])).toEqual({
      name: 'm',
      status: 'pulling manifest',
      completed: 0,
      total: 0,
      percent: null,
    })
    // Eight repeated lines for one layer without `completed`: total counted once, nothing completed yet.
    for (const l of head.slice(1)) agg.add(l)
    expect(agg.progress()).toMatchObject({
      status: 'pulling 26bd607a51eb',
      total: 408734816,
      completed: 0,
      percent: 0,
    })
    agg.add({ ...head[1], completed: 204367408 })
    expect(agg.progress()).toMatchObject({ completed: 204367408, percent: 50 })
    // The second layer adds its total; the first keeps its count.
    agg.add(tail[0])
    const p = agg.progress()
    expect(p.total).toBe(408734816 + 260)
    expect(p.completed).toBe(204367408)
    expect(p.percent).toBe(Math.floor((204367408 / (408734816 + 260)) * 1000) / 10)
    agg.add({ ...head[1], completed: 408734816 })
    for (const l of tail) agg.add(l)
    expect(agg.progress()).toEqual({
      name: 'm',
      status: 'success',
      completed: 408734816 + 260,
      total: 408734816 + 260,
      percent: 100,
    })
  })
})

describe('loopbackListenAddress', () => {
  test('binds the child to loopback only', () => {
    expect(loopbackListenAddress('http://127.0.0.1:11434')).toEqual({ value: '127.0.0.1:11434' })
    expect(loopbackListenAddress('http://localhost:9999')).toEqual({ value: '127.0.0.1:9999' })
    expect(loopbackListenAddress('http://[::1]:11434')).toEqual({ value: '[::1]:11434' })
    expect(loopbackListenAddress('http://127.0.0.2')).toEqual({ value: '127.0.0.2:80' })
  })

  test.each([
    'http://0.0.0.0:11434',
    'http://192.168.1.5:11434',
    'http://[::]:11434',
    'http://example.com:11434',
  ])('refuses to start Ollama for %s', (host) => {
    expect(loopbackListenAddress(host)).toEqual({ error: expect.stringMatching(/not a loopback address/) })
  })

  test('refuses https (ollama serve speaks plain http)', () => {
    expect(loopbackListenAddress('https://127.0.0.1:11434')).toEqual({
      error: expect.stringMatching(/plain http/),
    })
  })
})

describe('resolveModelName is remembered', () => {
  test('the same name gives the same frozen answer; a bad one throws every time; the memory is bounded', async () => {
    const { resolveModelName } = await import('../src/ollama/names')
    const a = resolveModelName('Library/Llama3.2')
    expect(resolveModelName('Library/Llama3.2')).toBe(a)
    expect(Object.isFrozen(a)).toBe(true)
    expect(a.display).toBe('llama3.2:latest')
    for (let i = 0; i < 3; i++) expect(() => resolveModelName('../etc/passwd')).toThrow(/segment/)
    // Past the bound the memory starts over; every answer stays right.
    for (let i = 0; i < 3000; i++) expect(resolveModelName(`m${i}:T${i}`).display).toBe(`m${i}:t${i}`)
    expect(resolveModelName('Library/Llama3.2')).toEqual(a)
  })
})

import { describe, expect, it } from 'vitest'
import { deviceOptions, goFoldsTo, isSharedLLMError, pickFields } from '../src/index'

function refusal(fn: () => unknown) {
  try {
    fn()
  } catch (err) {
    if (isSharedLLMError(err)) return err
    throw err
  }
  throw new Error('expected a refusal')
}

describe('Go’s encoding/json key folding', () => {
  it.each([
    ['model', 'model', true],
    ['Model', 'model', true],
    ['MODEL', 'model', true],
    ['\u212Aeep_alive', 'keep_alive', true], // KELVIN SIGN folds to k
    ['\u017Ftream', 'stream', true], // LONG S folds to s
    ['KEEP_ALIVE', 'keep_alive', true],
    ['keep-alive', 'keep_alive', false],
    ['keepalive', 'keep_alive', false],
    ['modeł', 'model', false],
    ['mode', 'model', false],
    ['ｍodel', 'model', false], // fullwidth m does not fold to m
    ['\u0130mages', 'images', false], // dotted capital I has no simple fold to i
  ])('%j folds to %j: %s', (key, name, folds) => {
    expect(goFoldsTo(key, name)).toBe(folds)
  })
})

describe('the outgoing body', () => {
  it('keeps exact fields, drops unknown ones and refuses a folded one, naming it', () => {
    expect(pickFields('chat', { model: 'a', messages: [], extra: 1, name: 'b' })).toEqual({
      model: 'a',
      messages: [],
    })
    const err = refusal(() => pickFields('chat', { model: 'a', Model: 'b' }))
    expect(err.code).toBe('VALIDATION')
    expect(err.details).toEqual({ field: 'Model' })
    expect(err.message).toMatch(/"Model".*"model"/)
    // show and pull: the older `name` stands in for an absent model, and is never forwarded itself.
    expect(pickFields('show', { name: 'x', verbose: true, system: 's' })).toEqual({
      model: 'x',
      verbose: true,
    })
    expect(pickFields('pull', { name: 'x', insecure: true, password: 'p' })).toEqual({ model: 'x' })
    expect(refusal(() => pickFields('pull', { model: 'x', NAME: 'y' })).details).toEqual({ field: 'NAME' })
  })

  it('options for a non-admin role: sampling kept, load-time refused naming the option, unknown dropped', () => {
    expect(deviceOptions({ temperature: 0.1, stop: ['x'], mirostat: 2, NUM_GPU: 9 })).toEqual({
      temperature: 0.1,
      stop: ['x'],
    })
    for (const o of ['num_gpu', 'num_batch', 'num_thread', 'use_mmap', 'numa', 'main_gpu', 'low_vram']) {
      expect(refusal(() => deviceOptions({ [o]: 1 })).details).toEqual({ field: `options.${o}` })
    }
    expect(refusal(() => deviceOptions({ temperature: 'hot' })).details).toEqual({
      field: 'options.temperature',
    })
  })
})

describe('jsonTooDeep', () => {
  it('counts only the brackets outside strings, escapes included, in one pass', async () => {
    const { jsonTooDeep } = await import('../src/gateway/http/body')
    expect(jsonTooDeep('[[[]]]', 3)).toBe(false)
    expect(jsonTooDeep('[[[[]]]]', 3)).toBe(true)
    expect(jsonTooDeep(`{"a":"${'['.repeat(100)}"}`, 3)).toBe(false)
    // A quote escaped inside a string, and a string that ends in an escaped backslash.
    expect(jsonTooDeep(JSON.stringify({ a: '"[[[[[', b: [[]] }), 3)).toBe(false)
    expect(jsonTooDeep(JSON.stringify({ a: '\\', b: [[[[1]]]] }), 3)).toBe(true)
  })
})

import { mount } from '@vue/test-utils'
import { NTag } from 'naive-ui'
import { describe, expect, it } from 'vitest'
import LoadBadge from '../src/components/LoadBadge.vue'

describe('LoadBadge', () => {
  it.each([
    ['loaded', 'loaded', 'info', /in memory now/],
    ['free', 'loads now', 'success', /free memory/],
    ['unloads_idle', 'swaps in', 'default', /unloads a model nobody is using/],
    ['busy', 'memory busy', 'warning', /models in use hold the memory/],
  ] as const)('%s reads "%s"', (load, text, type, title) => {
    const w = mount(LoadBadge, { props: { load } })
    expect(w.text()).toBe(text)
    expect(w.findComponent(NTag).props('type')).toBe(type)
    expect(w.attributes('data-load')).toBe(load)
    expect(w.attributes('title')).toMatch(title)
  })
  it('shows nothing while it is unknown', () => {
    expect(
      mount(LoadBadge, { props: { load: 'unknown' } })
        .findComponent(NTag)
        .exists(),
    ).toBe(false)
    expect(
      mount(LoadBadge, { props: { load: undefined } })
        .findComponent(NTag)
        .exists(),
    ).toBe(false)
  })
})

import { mount } from '@vue/test-utils'
import { NTag } from 'naive-ui'
import { describe, expect, it } from 'vitest'
import FitBadge from '../src/components/FitBadge.vue'

describe('FitBadge', () => {
  it.each([
    ['fits', 'fits', 'success'],
    ['exceeds_allocation', 'won’t fit', 'error'],
    ['unknown', 'fit unknown', 'default'],
    ['not_allowed', 'not allowed', 'warning'],
  ] as const)('%s reads "%s"', (verdict, text, type) => {
    const w = mount(FitBadge, { props: { verdict, requiredMb: 5120 } })
    expect(w.text()).toBe(text)
    expect(w.findComponent(NTag).props('type')).toBe(type)
    expect(w.attributes('data-verdict')).toBe(verdict)
    expect(w.attributes('title')).toMatch(/needs about 5 GiB$/)
  })
  it('says why a model is not allowed', () => {
    const w = mount(FitBadge, { props: { verdict: 'not_allowed', requiredMb: 5120 } })
    expect(w.attributes('title')).toBe('not in this role’s model list; needs about 5 GiB')
  })
  it('prefixes a role label and says when the size is not known', () => {
    const w = mount(FitBadge, { props: { verdict: 'fits', requiredMb: null, label: 'guest' } })
    expect(w.text()).toBe('guest: fits')
    expect(w.attributes('title')).toBe('size estimate not known yet')
  })
})

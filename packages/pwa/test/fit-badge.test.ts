import { mount } from '@vue/test-utils'
import { NTag } from 'naive-ui'
import { describe, expect, it } from 'vitest'
import FitBadge from '../src/components/FitBadge.vue'

describe('FitBadge', () => {
  it.each([
    ['fits', 'fits', 'success', 'needs about 5 GiB'],
    ['exceeds_allocation', 'won’t fit', 'error', 'needs about 5 GiB'],
    ['unknown', 'fit unknown', 'default', 'needs about 5 GiB'],
    ['not_allowed', 'not allowed', 'warning', 'not in this role’s model list; needs about 5 GiB'],
  ] as const)('%s reads "%s"', (verdict, text, type, title) => {
    const w = mount(FitBadge, { props: { verdict, requiredMb: 5120 } })
    expect(w.text()).toBe(text)
    expect(w.findComponent(NTag).props('type')).toBe(type)
    expect(w.attributes('data-verdict')).toBe(verdict)
    expect(w.attributes('title')).toBe(title)
  })
  it('prefixes a role label and says when the size is not known', () => {
    const w = mount(FitBadge, { props: { verdict: 'fits', requiredMb: null, label: 'guest' } })
    expect(w.text()).toBe('guest: fits')
    expect(w.attributes('title')).toBe('size estimate not known yet')
  })
  it('a conservative estimate never reads as a plain "fits"', () => {
    const w = mount(FitBadge, { props: { verdict: 'fits', requiredMb: 5120, conservative: true } })
    expect(w.text()).toBe('fits (estimated conservatively)')
    expect(w.findComponent(NTag).props('type')).toBe('warning')
    expect(w.attributes('title')).toBe(
      'needs about 5 GiB; the model’s shape could not be read, so this is a conservative estimate',
    )
    expect(w.attributes('data-conservative')).toBe('')
  })
})

import { mount } from '@vue/test-utils'
import { describe, expect, it } from 'vitest'
import DeviceCard from '../src/components/DeviceCard.vue'
import { builtinRoles, device } from './helpers'

describe('DeviceCard', () => {
  it('shows an approved device with its role, slice of the role maximum and usage', () => {
    const d = device({ name: 'Ana’s Pixel', status: 'approved', role_id: 'role-user', allocation_mb: 3072 })
    const w = mount(DeviceCard, {
      props: {
        device: d,
        role: builtinRoles[1]!,
        usage: { requests: 3, prompt_tokens: 20, completion_tokens: 100 },
      },
    })
    expect(w.text()).toContain('Ana’s Pixel')
    expect(w.get('[data-status]').attributes('data-status')).toBe('approved')
    expect(w.get('[data-field="role"]').text()).toBe('user')
    expect(w.get('[data-field="allocation"]').text()).toBe('3 GiB of 8 GiB max')
    expect(w.get('[data-field="usage"]').text()).toBe('3 requests, 120 tokens')
    expect(w.get('.online').classes()).toContain('on')
  })
  it('shows no slice for a pending device and says when it was last seen', () => {
    const d = device({ status: 'pending', online: false, last_seen: Date.now() - 5 * 60_000 })
    const w = mount(DeviceCard, { props: { device: d, role: null, usage: null } })
    expect(w.get('[data-field="allocation"]').text()).toBe('—')
    expect(w.get('[data-field="usage"]').text()).toBe('none yet')
    expect(w.text()).toContain('5 min ago')
    expect(w.get('.online').classes()).not.toContain('on')
  })
  it('renders actions passed in its slot', () => {
    const w = mount(DeviceCard, {
      props: { device: device(), role: null },
      slots: { default: '<button data-action="x">Approve</button>' },
    })
    expect(w.get('.actions [data-action="x"]').text()).toBe('Approve')
  })
})

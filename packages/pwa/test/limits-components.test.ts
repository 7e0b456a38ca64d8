import type { DeviceLimitsView } from '@sharedllm/core/protocol'
import { mount } from '@vue/test-utils'
import { NInputNumber } from 'naive-ui'
import { createPinia, setActivePinia } from 'pinia'
import { describe, expect, it } from 'vitest'
import BudgetNotices from '../src/components/BudgetNotices.vue'
import DeviceLimitsForm from '../src/components/DeviceLimitsForm.vue'
import LimitsMeter from '../src/components/LimitsMeter.vue'
import { at } from '../src/lib/limits'
import { useNoticesStore } from '../src/stores/notices'
import { device, flush, role, stubHost } from './helpers'

const view = (over: Partial<DeviceLimitsView> = {}): DeviceLimitsView => ({
  time_zone: 'UTC',
  quota: [
    { window: 'day', budget: 1000, used: 850, remaining: 150, resets_at: Date.now() + 3_600_000 },
    { window: 'week', budget: null, used: 850, remaining: null, resets_at: Date.now() + 86_400_000 },
  ],
  hours: {
    open: true,
    always: false,
    next_change: null,
    next_open: null,
    open_until: Date.now() + 60_000,
    granted_until: null,
  },
  ...over,
})

describe('LimitsMeter', () => {
  it('shows a meter per window that has a budget, with what is left, and the hours line', () => {
    const w = mount(LimitsMeter, { props: { limits: view() } })
    expect(w.findAll('[data-quota]').map((m) => m.attributes('data-quota'))).toEqual(['day'])
    expect(w.get('[data-quota="day"] [data-remaining]').text()).toMatch(/^150 of 1,000 tokens left; resets /)
    const bar = w.get('[role="meter"]')
    expect(bar.attributes('aria-valuenow')).toBe('850')
    expect(bar.attributes('aria-valuetext')).toBe('85 % used')
    expect(w.get('.fill').classes()).toContain('warn')
    expect(w.get('[data-hours]').text()).toMatch(/^Open until \d\d:\d\d$/)
  })

  it('shows nothing without budgets or a schedule', () => {
    const w = mount(LimitsMeter, {
      props: { limits: view({ quota: [], hours: { ...view().hours, always: true } }) },
    })
    expect(w.find('[data-limits]').exists()).toBe(false)
  })
})

describe('BudgetNotices', () => {
  it('names the budget and its reset in the host’s time zone, not the browser’s', async () => {
    setActivePinia(createPinia())
    // Kathmandu is UTC+05:45, so its reset time (17:45) is no other zone's a browser is likely to be in.
    const resets_at = Date.UTC(2030, 0, 6, 12, 0)
    useNoticesStore().onBudgetReached({
      device_id: 'd1',
      device_name: 'Kids tablet',
      window: 'day',
      threshold: 100,
      used: 1_000_100,
      budget: 1_000_000,
      resets_at,
      time_zone: 'Asia/Kathmandu',
    })
    const w = mount(BudgetNotices, { global: { stubs: { RouterLink: { template: '<a><slot /></a>' } } } })
    const text = w.get('[data-budget-reached]').text()
    expect(text).toMatch(
      /^Kids tablet used its daily budget of 1,000,000 tokens; it resets on \w+ 6 Jan at 17:45\./,
    )
    expect(text).toContain(`it resets ${at(resets_at, 'Asia/Kathmandu')}.`)
  })
})

describe('DeviceLimitsForm', () => {
  it('sends budgets and hours, and shows the API’s refusal at the field it names, as lines', async () => {
    const d = device({ status: 'approved', role_id: 'role-guest' })
    const host = stubHost({
      [`PATCH /api/devices/${d.id}/limits`]: (call) =>
        ((call.body as { allowed_hours: unknown[] | null }).allowed_hours?.length ?? 0) > 1
          ? {
              status: 400,
              body: {
                error: 'allowed_hours.1: overlaps window 0',
                code: 'VALIDATION',
                details: { field: 'allowed_hours.1' },
              },
            }
          : { body: { device: { ...d, token_budget_day: 500 } } },
    })
    const w = mount(DeviceLimitsForm, { props: { device: d, role: role('role-guest', 'guest', 2048) } })
    w.findAllComponents(NInputNumber)
      .find((c) => c.attributes('data-field') === 'token_budget_day')!
      .vm.$emit('update:value', 500)
    await w.get('[data-field="hours"] textarea').setValue('Mon-Fri 16:00-20:00\nMon 19:00-21:00')
    await w.get('form').trigger('submit')
    await flush()
    await flush()
    expect(w.get('[data-field-error="allowed_hours"]').text()).toBe('line 2: overlaps line 1')
    expect(host.calls.at(-1)!.body).toEqual({
      token_budget_day: 500,
      token_budget_week: null,
      token_budget_month: null,
      allowed_hours: [
        { days: [1, 2, 3, 4, 5], from: '16:00', to: '20:00' },
        { days: [1], from: '19:00', to: '21:00' },
      ],
    })
    expect(w.emitted('saved')).toBeUndefined()
    await w.get('[data-field="hours"] textarea').setValue('')
    await w.get('form').trigger('submit')
    await flush()
    await flush()
    expect(host.calls.at(-1)!.body).toMatchObject({ allowed_hours: null })
    expect(w.emitted('saved')![0]![0]).toMatchObject({ token_budget_day: 500 })
    expect(w.find('[data-field-error="allowed_hours"]').exists()).toBe(false)
  })
})

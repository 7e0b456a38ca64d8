import { mount } from '@vue/test-utils'
import { NInputNumber, NSwitch } from 'naive-ui'
import { describe, expect, it } from 'vitest'
import RoleEditor from '../src/components/RoleEditor.vue'
import { builtinRoles, role } from './helpers'

const numberField = (w: ReturnType<typeof mount>, field: string) =>
  w.findAllComponents(NInputNumber).find((c) => c.attributes('data-field') === field)!

describe('RoleEditor', () => {
  it('creates a role from what was typed', async () => {
    const w = mount(RoleEditor, { props: { role: null } })
    await w.get('[data-field="name"] input').setValue('kids')
    numberField(w, 'max_memory_mb').vm.$emit('update:value', 2048)
    numberField(w, 'requests_per_minute').vm.$emit('update:value', 20)
    w.findComponent(NSwitch).vm.$emit('update:value', true)
    // Typed as one comma-separated line (ListInput), as a person would.
    await w.get('[data-field="allowed_models"] input').setValue('llama3*, qwen2.5:7b, ')
    await w.get('form').trigger('submit')
    expect(w.emitted('save')).toEqual([
      [
        {
          name: 'kids',
          max_memory_mb: 2048,
          can_pull: true,
          trust_level: 1,
          allowed_models: ['llama3*', 'qwen2.5:7b'],
          requests_per_minute: 20,
          max_concurrent: 1,
          max_keep_alive_s: null,
          max_context_tokens: null,
        },
      ],
    ])
    expect(w.get('[data-action="save"]').text()).toBe('Create role')
  })

  it('starts from the role being edited and sends its edited fields', async () => {
    const guest = builtinRoles[2]!
    const w = mount(RoleEditor, { props: { role: guest } })
    expect((w.get('[data-field="name"] input').element as HTMLInputElement).value).toBe('guest')
    numberField(w, 'max_memory_mb').vm.$emit('update:value', 1536)
    await w.get('form').trigger('submit')
    expect(w.emitted('save')![0]![0]).toMatchObject({
      name: 'guest',
      max_memory_mb: 1536,
      requests_per_minute: 30,
    })
    expect(w.get('[data-action="save"]').text()).toBe('Save')
  })

  it('follows a switch to another role', async () => {
    const w = mount(RoleEditor, { props: { role: builtinRoles[0]! } })
    await w.setProps({ role: role('r-x', 'lab', 8192) })
    expect((w.get('[data-field="name"] input').element as HTMLInputElement).value).toBe('lab')
  })

  it('shows the API’s validation message as is and emits cancel', async () => {
    const w = mount(RoleEditor, {
      props: { role: null, error: 'max_memory_mb: must be a whole number of MiB' },
    })
    expect(w.get('[data-role-error]').text()).toBe('max_memory_mb: must be a whole number of MiB')
    await w.get('[data-action="cancel"]').trigger('click')
    expect(w.emitted('cancel')).toHaveLength(1)
  })

  it('sends the fair-share, budget and hours fields typed in, and names a schedule it cannot read', async () => {
    const w = mount(RoleEditor, { props: { role: null } })
    await w.get('[data-field="name"] input').setValue('kids')
    numberField(w, 'share_weight').vm.$emit('update:value', 3)
    numberField(w, 'max_queued').vm.$emit('update:value', 4)
    numberField(w, 'max_wait_s').vm.$emit('update:value', 90)
    numberField(w, 'token_budget_day').vm.$emit('update:value', 20000)
    await w.get('[data-field="allowed_hours"] textarea').setValue('Mon-Fri 16:00-20:00\nSat,Sun 9:00-21:00')
    await w.get('form').trigger('submit')
    expect(w.emitted('save')![0]![0]).toMatchObject({
      share_weight: 3,
      max_queued: 4,
      max_wait_s: 90,
      token_budget_day: 20000,
      allowed_hours: [
        { days: [1, 2, 3, 4, 5], from: '16:00', to: '20:00' },
        { days: [0, 6], from: '09:00', to: '21:00' },
      ],
    })
    expect(w.emitted('save')![0]![0]).not.toHaveProperty('token_budget_week')
    await w.get('[data-field="allowed_hours"] textarea').setValue('weekdays after school')
    await w.get('form').trigger('submit')
    expect(w.emitted('save')).toHaveLength(1)
    expect(w.get('[data-field-error="allowed_hours"]').text()).toMatch(/line 1/)
  })

  it('shows an edited role’s schedule as lines and sends null when it is cleared', async () => {
    const kids = role('r-kids', 'kids', 2048, {
      allowed_hours: [{ days: [1, 2, 3, 4, 5], from: '16:00', to: '20:00' }],
      share_weight: 2,
    })
    const w = mount(RoleEditor, { props: { role: kids } })
    expect((w.get('[data-field="allowed_hours"] textarea').element as HTMLTextAreaElement).value).toBe(
      'Mon-Fri 16:00-20:00',
    )
    await w.get('[data-field="allowed_hours"] textarea').setValue('')
    await w.get('form').trigger('submit')
    expect(w.emitted('save')![0]![0]).toMatchObject({ allowed_hours: null, share_weight: 2 })
  })
})

import { mount } from '@vue/test-utils'
import { NSelect } from 'naive-ui'
import { createPinia, setActivePinia } from 'pinia'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import ApprovalToast from '../src/components/ApprovalToast.vue'
import { useApprovalsStore } from '../src/stores/approvals'
import { useDevicesStore } from '../src/stores/devices'
import { useLiveStore } from '../src/stores/live'
import { useRolesStore } from '../src/stores/roles'
import { builtinRoles, device, flush, stubHost } from './helpers'

const settingsBody = {
  settings: [
    { key: 'default_role', value: 'role-user', default: 'role-guest', description: '', type: 'string' },
  ],
}

describe('ApprovalToast', () => {
  beforeEach(() => {
    setActivePinia(createPinia())
    useRolesStore().replaceAll(builtinRoles)
  })
  afterEach(() => vi.unstubAllGlobals())

  function mountWith(routes: Parameters<typeof stubHost>[0]) {
    const host = stubHost({ 'GET /api/settings': () => ({ body: settingsBody }), ...routes })
    const pinia = createPinia()
    setActivePinia(pinia)
    useRolesStore().replaceAll(builtinRoles)
    const w = mount(ApprovalToast, { global: { plugins: [pinia] } })
    return { w, host }
  }

  it('appears on a device_pending_approval event and approves with the suggested role', async () => {
    const phone = device({ name: 'Ana’s Pixel' })
    const { w, host } = mountWith({
      [`POST /api/devices/${phone.id}/approve`]: (c) => ({
        body: {
          device: {
            ...phone,
            status: 'approved',
            role_id: (c.body as { role_id: string }).role_id,
            allocation_mb: 4096,
            updated_at: phone.updated_at + 1,
          },
        },
      }),
    })
    expect(w.find('[data-toast]').exists()).toBe(false)
    useLiveStore().apply({ type: 'device_pending_approval', device: phone })
    await flush()
    await flush()
    const toast = w.get(`[data-toast="${phone.id}"]`)
    expect(toast.text()).toContain('Ana’s Pixel asks to join')
    // default_role from the settings is preselected
    expect(w.findComponent(NSelect).props('value')).toBe('role-user')

    await toast.get('[data-action="approve"]').trigger('click')
    await flush()
    const call = host.calls.find((c) => c.method === 'POST')!
    expect(call).toMatchObject({ path: `/api/devices/${phone.id}/approve`, body: { role_id: 'role-user' } })
    expect(w.find('[data-toast]').exists()).toBe(false)
    expect(useDevicesStore().byId[phone.id]).toMatchObject({ status: 'approved', role_id: 'role-user' })
  })

  it('approves with the role picked in the toast', async () => {
    const phone = device()
    const { w, host } = mountWith({
      [`POST /api/devices/${phone.id}/approve`]: () => ({
        body: { device: { ...phone, status: 'approved' } },
      }),
    })
    useApprovalsStore().announce(phone)
    await flush()
    w.findComponent(NSelect).vm.$emit('update:value', 'role-guest')
    await flush()
    await w.get('[data-action="approve"]').trigger('click')
    await flush()
    expect(host.calls.at(-1)).toMatchObject({ body: { role_id: 'role-guest' } })
  })

  it('denies without leaving the page', async () => {
    const phone = device()
    const { w, host } = mountWith({
      [`POST /api/devices/${phone.id}/deny`]: () => ({ body: { device: { ...phone, status: 'denied' } } }),
    })
    useApprovalsStore().announce(phone)
    await flush()
    await w.get('[data-action="deny"]').trigger('click')
    await flush()
    expect(host.calls.at(-1)).toMatchObject({ method: 'POST', path: `/api/devices/${phone.id}/deny` })
    expect(w.find('[data-toast]').exists()).toBe(false)
    expect(useDevicesStore().byId[phone.id]?.status).toBe('denied')
  })

  it('keeps the toast and shows the API’s message when approval fails', async () => {
    const phone = device()
    const { w } = mountWith({
      [`POST /api/devices/${phone.id}/approve`]: () => ({
        status: 422,
        body: {
          error: 'Only 512 MiB of capacity is free; role user needs 4096 MiB',
          code: 'CAPACITY_EXCEEDED',
        },
      }),
    })
    useApprovalsStore().announce(phone)
    await flush()
    await w.get('[data-action="approve"]').trigger('click')
    await flush()
    await flush()
    expect(w.get('[role="alert"]').text()).toBe('Only 512 MiB of capacity is free; role user needs 4096 MiB')
    expect(w.find(`[data-toast="${phone.id}"]`).exists()).toBe(true)
  })

  it('goes away when another admin decides first', async () => {
    const phone = device()
    const { w } = mountWith({})
    const live = useLiveStore()
    live.apply({ type: 'device_pending_approval', device: phone })
    await flush()
    expect(w.find('[data-toast]').exists()).toBe(true)
    live.apply({
      type: 'device_approved',
      device: { ...phone, status: 'approved', updated_at: phone.updated_at + 1 },
    })
    await flush()
    expect(w.find('[data-toast]').exists()).toBe(false)
  })
})

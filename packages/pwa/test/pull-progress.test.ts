import { mount } from '@vue/test-utils'
import { describe, expect, it } from 'vitest'
import PullProgress from '../src/components/PullProgress.vue'
import type { PullState } from '../src/stores/models'

const MiB = 1024 * 1024
const pull = (over: Partial<PullState> = {}): PullState => ({
  name: 'llama3.2:3b',
  status: 'pulling dd3a…',
  completed: 512 * MiB,
  total: 2048 * MiB,
  percent: 25,
  own: true,
  ...over,
})

describe('PullProgress', () => {
  it('shows status, percent and bytes, and asks to cancel', async () => {
    const w = mount(PullProgress, { props: { pull: pull() } })
    expect(w.get('[data-field="status"]').text()).toBe('pulling dd3a…')
    expect(w.get('[data-field="bytes"]').text()).toBe('512 MiB of 2 GiB')
    expect(w.get('.n-progress').attributes('aria-valuenow')).toBe('25')
    await w.get('[data-action="cancel"]').trigger('click')
    expect(w.emitted('cancel')).toEqual([['llama3.2:3b']])
  })
  it('derives the percent from bytes when the host sent none, and waits for a size', () => {
    const w = mount(PullProgress, {
      props: { pull: pull({ percent: null, completed: 3 * MiB, total: 4 * MiB }) },
    })
    expect(w.get('.n-progress').attributes('aria-valuenow')).toBe('75')
    const w2 = mount(PullProgress, { props: { pull: pull({ percent: null, completed: 0, total: 0 }) } })
    expect(w2.get('[data-field="bytes"]').text()).toBe('waiting for size…')
  })
  it('offers cancel for a pull started elsewhere too', () => {
    const w = mount(PullProgress, { props: { pull: pull({ own: false }) } })
    expect(w.find('[data-action="cancel"]').exists()).toBe(true)
  })
  it('shows a failure with the host’s message and a dismiss button', async () => {
    const w = mount(PullProgress, {
      props: { pull: pull({ error: 'pull model manifest: file does not exist' }) },
    })
    expect(w.get('[role="alert"]').text()).toBe('pull model manifest: file does not exist')
    expect(w.get('[data-field="status"]').text()).toBe('failed')
    await w.get('[data-action="dismiss"]').trigger('click')
    expect(w.emitted('dismiss')).toEqual([['llama3.2:3b']])
  })
  it('shows a pull cancelled elsewhere as cancelled, not as a red failure', () => {
    const w = mount(PullProgress, {
      props: { pull: pull({ cancelled: true, status: 'cancelled', own: false }) },
    })
    expect(w.get('[data-field="status"]').text()).toBe('cancelled')
    expect(w.find('[role="alert"]').exists()).toBe(false)
    expect(w.find('[data-action="dismiss"]').exists()).toBe(true)
  })
})

describe('models store: cancel', () => {
  it('a pull this tab cancelled leaves no row when the host reports it cancelled; one cancelled elsewhere is not a failure', async () => {
    const { createPinia, setActivePinia } = await import('pinia')
    const { useModelsStore } = await import('../src/stores/models')
    setActivePinia(createPinia())
    const models = useModelsStore()
    models.progress({ name: 'a:1b', status: 'pulling', completed: 1, total: 2, percent: 50 })
    globalThis.fetch = (async () => new Response(null, { status: 204 })) as typeof fetch
    await models.cancel('a:1b')
    models.finished('a:1b', 'The pull of a:1b was cancelled')
    expect(models.pulls['a:1b']).toBeUndefined()
    models.progress({ name: 'b:1b', status: 'pulling', completed: 1, total: 2, percent: 50 })
    models.finished('b:1b', 'The pull of b:1b was cancelled')
    expect(models.pulls['b:1b']).toMatchObject({ cancelled: true, status: 'cancelled' })
    expect(models.pulls['b:1b']?.error).toBeUndefined()
    models.progress({ name: 'c:1b', status: 'pulling', completed: 1, total: 2, percent: 50 })
    models.finished('c:1b', 'pull model manifest: file does not exist')
    expect(models.pulls['c:1b']?.error).toBe('pull model manifest: file does not exist')
  })
})

import type { PoolHost } from '@sharedllm/core/protocol'
import { mount } from '@vue/test-utils'
import { describe, expect, it } from 'vitest'
import PoolHostCard from '../src/components/PoolHostCard.vue'
import { breakerLine, currentFailure, hostMemory } from '../src/lib/pool'

const NOW = 1_800_000_000_000
const closed = { state: 'closed' as const, failures: 0, open_until: null, last_failure: null }
const peer: PoolHost = {
  id: 'peer-b',
  name: 'gaming-pc',
  self: false,
  up: true,
  version: '0.1.0',
  free_mb: 6144,
  total_mb: 24576,
  latency_ms: 1.4,
  breaker: closed,
  last_error: null,
  installed: ['llama3.2:3b', 'qwen3:8b'],
  loaded: ['qwen3:8b'],
}

describe('pool wording', () => {
  it('a breaker reads as what routed requests meet: answering, failing, paused with the time left, trial next', () => {
    expect(breakerLine(closed)).toEqual({ text: 'Answering', tone: 'success' })
    expect(breakerLine({ ...closed, failures: 2, last_failure: 'x' })).toEqual({
      text: '2 failed in a row',
      tone: 'warning',
    })
    expect(
      breakerLine({ state: 'open', failures: 3, open_until: NOW + 12_500, last_failure: 'x' }, NOW),
    ).toEqual({ text: 'Paused for 13 s after failures', tone: 'error' })
    expect(breakerLine({ state: 'half_open', failures: 3, open_until: NOW, last_failure: 'x' }).tone).toBe(
      'warning',
    )
  })

  it('the failure that matters now: the poll while down, the breaker while it counts failures, else none', () => {
    expect(currentFailure({ up: false, breaker: closed, last_error: 'connect ECONNREFUSED' })).toBe(
      'connect ECONNREFUSED',
    )
    const failing = { state: 'open' as const, failures: 3, open_until: NOW, last_failure: 'answered 502' }
    expect(currentFailure({ up: true, breaker: failing, last_error: null })).toBe('answered 502')
    // A breaker closed again after a success keeps its last failure as history, not as a problem.
    expect(
      currentFailure({ up: true, breaker: { ...closed, last_failure: 'old' }, last_error: null }),
    ).toBeNull()
  })

  it('memory: used and free of what the host reports; nothing while it reports no total', () => {
    expect(hostMemory(peer)).toEqual({
      total: 24576 * 1048576,
      used: 18432 * 1048576,
      allocated: 0,
      reserve: 0,
      free: 6144 * 1048576,
    })
    expect(hostMemory({ free_mb: null, total_mb: null })).toBeNull()
  })
})

describe('PoolHostCard', () => {
  it('shows a peer: up, version, latency, memory as a bar (used and free only), models', () => {
    const w = mount(PoolHostCard, { props: { host: peer } })
    expect(w.find('h2').text()).toBe('gaming-pc')
    expect(w.find('[data-field="up"]').text()).toBe('up')
    expect(w.find('[data-field="latency"]').text()).toBe('1.4 ms')
    expect(w.text()).toContain('2 installed, 1 loaded')
    expect(w.findAll('[data-legend]').map((l) => l.attributes('data-legend'))).toEqual(['used', 'free'])
    expect(w.find('[data-field="breaker"]').text()).toContain('Answering')
    expect(w.find('[data-field="last-failure"]').exists()).toBe(false)
  })

  it('shows a peer that is down with the failure of its polls and of its routed requests', () => {
    const w = mount(PoolHostCard, {
      props: {
        host: {
          ...peer,
          up: false,
          last_error: 'pool: not answering its status: connect ECONNREFUSED 10.0.0.3:8443',
          breaker: {
            state: 'open',
            failures: 3,
            open_until: Date.now() + 30_000,
            last_failure: 'answered 502',
          },
        },
      },
    })
    expect(w.find('[data-pool-host]').attributes('data-up')).toBe('no')
    expect(w.find('[data-field="up"]').text()).toBe('down')
    expect(w.find('[data-field="breaker"]').text()).toMatch(/Paused for \d+ s after failures/)
    expect(w.find('[data-field="last-failure"]').text()).toBe('Last failure: answered 502')
    expect(w.find('[data-field="last-error"]').text()).toContain('ECONNREFUSED 10.0.0.3:8443')
  })

  it('this host: no latency or breaker; its Ollama up or not', () => {
    const w = mount(PoolHostCard, {
      props: {
        host: { ...peer, id: 'self', name: 'mac', self: true, breaker: null, up: false, latency_ms: 0 },
      },
    })
    expect(w.text()).toContain('this host')
    expect(w.find('[data-field="up"]').text()).toBe('Ollama not running')
    expect(w.find('[data-field="latency"]').exists()).toBe(false)
    expect(w.find('[data-field="breaker"]').exists()).toBe(false)
  })
})

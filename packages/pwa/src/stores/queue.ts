import type { EventMap, QueuePositionEvent, QueueSnapshot } from '@sharedllm/core/protocol'
import { defineStore } from 'pinia'
import { ref } from 'vue'
import { api } from '../api/client'

/**
 * The fair-share queue as this browser sees it: the positions of requests waiting (a device gets its own
 * `queue_position` events, the owner all), keyed by the `X-Request-Id` the chat sent; and, for the owner,
 * the `GET /api/queue` snapshot the queue page shows.
 */
export const useQueueStore = defineStore('queue', () => {
  const positions = ref<Record<string, QueuePositionEvent & { at: number }>>({})
  const snapshot = ref<QueueSnapshot | null>(null)
  const error = ref<string | null>(null)

  function position(ev: EventMap['queue_position']) {
    positions.value = {
      ...positions.value,
      [ev.request_id]: { request_id: ev.request_id, position: ev.position, eta_s: ev.eta_s, at: Date.now() },
    }
  }
  /** The request started (first token) or ended: its place is no longer news. */
  function clear(requestId: string) {
    if (!(requestId in positions.value)) return
    const { [requestId]: _, ...rest } = positions.value
    positions.value = rest
  }
  async function load() {
    try {
      snapshot.value = await api.queue()
      error.value = null
    } catch (err) {
      error.value = (err as Error).message
    }
  }
  return { positions, snapshot, error, position, clear, load }
})

import { defineStore } from 'pinia'
import { ref } from 'vue'
import type { SocketState } from '../api/socket'

export const useConnectionStore = defineStore('connection', () => {
  const state = ref<SocketState>('closed')
  const attempt = ref(0)
  const retryInMs = ref<number | null>(null)
  const lastSnapshotAt = ref<number | null>(null)
  const snapshots = ref(0)

  function setState(next: SocketState, info: { attempt: number; retryInMs: number | null }) {
    state.value = next
    attempt.value = info.attempt
    retryInMs.value = info.retryInMs
  }
  function markSnapshot() {
    lastSnapshotAt.value = Date.now()
    snapshots.value++
  }
  return { state, attempt, retryInMs, lastSnapshotAt, snapshots, setState, markSnapshot }
})

import type { MeResponse } from '@sharedllm/core/protocol'
import { defineStore } from 'pinia'
import { ref } from 'vue'
import { api } from '../api/client'

/** What a device may do: its role, allocation, usage and the models it may run. */
export const useMeStore = defineStore('me', () => {
  const me = ref<MeResponse | null>(null)
  const error = ref<string | null>(null)
  async function load() {
    try {
      me.value = await api.me()
      error.value = null
    } catch (err) {
      error.value = (err as Error).message
    }
  }
  return { me, error, load }
})

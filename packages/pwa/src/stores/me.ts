import type { MeResponse } from '@sharedllm/core/protocol'
import { defineStore } from 'pinia'
import { ref } from 'vue'
import { api } from '../api/client'
import { ApiRequestError } from '../api/http'
import { useSessionStore } from './session'

/** What a device may do: its role, allocation, usage and the models it may run. */
export const useMeStore = defineStore('me', () => {
  const me = ref<MeResponse | null>(null)
  const error = ref<string | null>(null)
  async function load() {
    try {
      me.value = await api.me()
      error.value = null
    } catch (err) {
      if (err instanceof ApiRequestError && err.status === 401) {
        // The key stopped working: the session store forgets it and says why; no raw 401 text here.
        await useSessionStore()
          .resolve()
          .catch(() => {})
        error.value = null
        return
      }
      error.value = (err as Error).message
    }
  }
  return { me, error, load }
})

import { ref } from 'vue'

/** Test stand-in for `virtual:pwa-register/vue` (vitest cannot mock virtual modules). */
export const needRefresh = ref(false)
export const offlineReady = ref(false)
export function useRegisterSW() {
  return { needRefresh, offlineReady, updateServiceWorker: async () => {} }
}

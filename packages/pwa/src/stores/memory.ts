import type { MemoryStats, OllamaStatus } from '@sharedllm/core/protocol'
import { defineStore } from 'pinia'
import { ref } from 'vue'

export const useMemoryStore = defineStore('memory', () => {
  const stats = ref<MemoryStats | null>(null)
  const ollama = ref<OllamaStatus | null>(null)
  const providerErrors = ref<Record<string, string>>({})

  function setStats(next: MemoryStats | null) {
    stats.value = next
  }
  function setOllama(next: OllamaStatus | null) {
    ollama.value = next
  }
  function providerError(provider: string, message: string) {
    providerErrors.value = { ...providerErrors.value, [provider]: message }
  }
  return { stats, ollama, providerErrors, setStats, setOllama, providerError }
})

import { defineStore } from 'pinia'
import { computed, ref, watchEffect } from 'vue'

export type ThemeChoice = 'light' | 'dark' | 'system'
const KEY = 'sharedllm.theme'

function stored(): ThemeChoice {
  const v = globalThis.localStorage?.getItem(KEY)
  return v === 'light' || v === 'dark' ? v : 'system'
}

/** Light, dark, or whatever the OS says; kept per browser. Sets `html.dark` / `html.light` for the CSS. */
export const useThemeStore = defineStore('theme', () => {
  const choice = ref<ThemeChoice>(stored())
  const media = globalThis.matchMedia?.('(prefers-color-scheme: dark)')
  const osDark = ref(media?.matches ?? false)
  media?.addEventListener?.('change', (e) => (osDark.value = e.matches))

  const dark = computed(() => (choice.value === 'system' ? osDark.value : choice.value === 'dark'))
  watchEffect(() => {
    const root = globalThis.document?.documentElement
    if (!root) return
    root.classList.toggle('dark', dark.value)
    root.classList.toggle('light', !dark.value)
    root.style.colorScheme = dark.value ? 'dark' : 'light'
  })
  function set(next: ThemeChoice) {
    choice.value = next
    if (next === 'system') globalThis.localStorage?.removeItem(KEY)
    else globalThis.localStorage?.setItem(KEY, next)
  }
  return { choice, dark, set }
})

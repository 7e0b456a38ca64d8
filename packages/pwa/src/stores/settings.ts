import type { SettingEntry, SettingKey } from '@sharedllm/core/protocol'
import { defineStore } from 'pinia'
import { computed, ref } from 'vue'
import { api } from '../api/client'

export const useSettingsStore = defineStore('settings', () => {
  const entries = ref<SettingEntry[]>([])
  let loaded: Promise<void> | null = null

  const value = (key: SettingKey) => entries.value.find((e) => e.key === key)?.value
  const defaultRoleId = computed(() => {
    const v = value('default_role')
    return typeof v === 'string' ? v : 'role-guest'
  })

  async function load() {
    entries.value = (await api.settings()).settings
  }
  function loadOnce() {
    loaded ??= load().catch((err) => {
      loaded = null
      throw err
    })
    return loaded
  }
  async function update(key: SettingKey, next: unknown) {
    const res = await api.setSetting(key, next)
    entries.value = entries.value.map((e) => (e.key === key ? { ...e, value: res.value } : e))
  }
  function changed(key: string, next: unknown) {
    entries.value = entries.value.map((e) => (e.key === key ? { ...e, value: next } : e))
  }
  return { entries, defaultRoleId, value, load, loadOnce, update, changed }
})

import type { UsageRecord, UsageRow, UsageTotals } from '@sharedllm/core/protocol'
import { defineStore } from 'pinia'
import { computed, ref } from 'vue'
import { api } from '../api/client'

const RECENT_KEPT = 50

export const useUsageStore = defineStore('usage', () => {
  const rows = ref<UsageRow[]>([])
  const recent = ref<UsageRecord[]>([])

  const byDevice = computed(() => {
    const totals: Record<string, UsageTotals> = {}
    for (const row of rows.value) {
      const key = row.device_id ?? 'admin'
      const t = totals[key] ?? { requests: 0, prompt_tokens: 0, completion_tokens: 0 }
      totals[key] = t
      t.requests += row.requests
      t.prompt_tokens += row.prompt_tokens
      t.completion_tokens += row.completion_tokens
    }
    return totals
  })

  async function load() {
    const res = await api.usage()
    rows.value = res.by_device_model
    recent.value = res.recent.slice(0, RECENT_KEPT)
  }

  /** A live `usage` event: count it without a round trip. */
  function record(rec: UsageRecord) {
    if (recent.value.some((r) => r.id === rec.id)) return
    recent.value = [rec, ...recent.value].slice(0, RECENT_KEPT)
    const idx = rows.value.findIndex((r) => r.device_id === rec.device_id && r.model === rec.model)
    const prev = idx >= 0 ? rows.value[idx] : undefined
    const row: UsageRow = {
      device_id: rec.device_id,
      device_name: prev?.device_name ?? null,
      model: rec.model,
      requests: (prev?.requests ?? 0) + 1,
      prompt_tokens: (prev?.prompt_tokens ?? 0) + rec.prompt_tokens,
      completion_tokens: (prev?.completion_tokens ?? 0) + rec.completion_tokens,
    }
    rows.value = idx >= 0 ? rows.value.map((r, i) => (i === idx ? row : r)) : [...rows.value, row]
  }
  return { rows, recent, byDevice, load, record }
})

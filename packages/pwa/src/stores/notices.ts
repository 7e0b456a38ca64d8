import type { EventMap, QuotaCrossing } from '@sharedllm/core/protocol'
import { defineStore } from 'pinia'
import { ref } from 'vue'

export interface BudgetNotice extends QuotaCrossing {
  /** Known for the owner's `budget_reached`; a device's own `quota` event names only its id. */
  device_name: string | null
  /** The host's IANA zone the reset is shown in; known for `budget_reached` (the device's own view has it in `/api/me`). */
  time_zone?: string
  at: number
}

const KEPT = 20

/**
 * Budget marks: a device's own `quota` events (80 % and 100 %), shown in its chat and My access, and the
 * owner's `budget_reached` notices on the dashboard. Dismissed ones go; the newest per device and window wins.
 */
export const useNoticesStore = defineStore('notices', () => {
  const quota = ref<BudgetNotice[]>([])
  const budgetReached = ref<BudgetNotice[]>([])

  const keyOf = (n: QuotaCrossing) => `${n.device_id}:${n.window}`
  function add(list: BudgetNotice[], n: BudgetNotice) {
    return [n, ...list.filter((x) => keyOf(x) !== keyOf(n))].slice(0, KEPT)
  }
  function onQuota(ev: EventMap['quota']) {
    quota.value = add(quota.value, { ...ev, device_name: null, at: Date.now() })
  }
  function onBudgetReached(ev: EventMap['budget_reached']) {
    budgetReached.value = add(budgetReached.value, { ...ev, at: Date.now() })
  }
  function dismissQuota(n: BudgetNotice) {
    quota.value = quota.value.filter((x) => x !== n)
  }
  function dismissBudget(n: BudgetNotice) {
    budgetReached.value = budgetReached.value.filter((x) => x !== n)
  }
  return { quota, budgetReached, onQuota, onBudgetReached, dismissQuota, dismissBudget }
})

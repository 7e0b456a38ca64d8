import type { Device, Role } from './types'

/** A budget window; each follows the host's wall clock in its time zone. */
export type QuotaWindow = 'day' | 'week' | 'month'

export const QUOTA_WINDOWS: QuotaWindow[] = ['day', 'week', 'month']

/** Each window's adjective, as refusals and notices name a budget: `daily`, `weekly`, `monthly`. */
export const WINDOW_WORD: Record<QuotaWindow, string> = { day: 'daily', week: 'weekly', month: 'monthly' }

export type TokenBudgets = Record<QuotaWindow, number | null>

/** The device's budgets: each of its own values where set, else its role's. */
export function effectiveBudgets(
  role: Pick<Role, 'token_budget_day' | 'token_budget_week' | 'token_budget_month'> | null,
  device: Pick<Device, 'token_budget_day' | 'token_budget_week' | 'token_budget_month'> | null,
): TokenBudgets {
  return {
    day: device?.token_budget_day ?? role?.token_budget_day ?? null,
    week: device?.token_budget_week ?? role?.token_budget_week ?? null,
    month: device?.token_budget_month ?? role?.token_budget_month ?? null,
  }
}

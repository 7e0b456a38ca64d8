import { SharedLLMError } from '../errors'
import { QUOTA_WINDOWS, type QuotaWindow, type TokenBudgets, WINDOW_WORD } from '../protocol/limits'
import type { QuotaCrossing } from '../protocol/types'
import { isoLocal, shortLocal, windowAt } from './zoned'

// Pure and browser-safe, so they live in the protocol (the dashboard uses them too); kept importable here.
export { effectiveBudgets, QUOTA_WINDOWS, type TokenBudgets } from '../protocol/limits'

export interface QuotaWindowStatus {
  window: QuotaWindow
  /** null: no budget in this window. */
  budget: number | null
  /** Prompt + completion tokens since the window started. */
  used: number
  remaining: number | null
  /** Window start and reset (the next start), UTC ms. */
  starts_at: number
  resets_at: number
}

export interface QuotaStatus {
  windows: QuotaWindowStatus[]
  /** The budget that is used up and resets last (what the device must wait for), or null. */
  exceeded: QuotaWindowStatus | null
}

/**
 * Where a device stands against its budgets at `now`. `used(from)` is its tokens since `from` (the
 * window's start). A budget is used up when the tokens reach it; a request is checked only at admission,
 * so one that crosses the budget while it streams finishes.
 */
export function quotaStatus(
  budgets: TokenBudgets,
  used: (from: number) => number,
  now: number,
  zone: string,
): QuotaStatus {
  const windows = QUOTA_WINDOWS.map((window): QuotaWindowStatus => {
    const [starts_at, resets_at] = windowAt(window, now, zone)
    const budget = budgets[window]
    const u = used(starts_at)
    return {
      window,
      budget,
      used: u,
      remaining: budget === null ? null : Math.max(0, budget - u),
      starts_at,
      resets_at,
    }
  })
  const over = windows.filter((w) => w.budget !== null && w.used >= w.budget)
  const exceeded = over.reduce<QuotaWindowStatus | null>(
    (a, w) => (a === null || w.resets_at > a.resets_at ? w : a),
    null,
  )
  return { windows, exceeded }
}

/** RATE_LIMITED (429) naming the budget and when it resets, with `retry_after_s` until the reset. */
export function overBudgetError(w: QuotaWindowStatus, now: number, zone: string): SharedLLMError {
  const retry = Math.max(1, Math.ceil((w.resets_at - now) / 1000))
  return new SharedLLMError(
    'RATE_LIMITED',
    `this device's ${WINDOW_WORD[w.window]} token budget (${w.budget} tokens) is used up; it resets ${shortLocal(w.resets_at, zone)} (${isoLocal(w.resets_at, zone)})`,
    {
      details: {
        reason: 'token_budget',
        window: w.window,
        budget: w.budget,
        used: w.used,
        resets_at: isoLocal(w.resets_at, zone),
        retry_after_s: retry,
      },
    },
  )
}

/** Throws the over-budget refusal when a budget is used up; returns the status otherwise. */
export function checkQuota(
  budgets: TokenBudgets,
  used: (from: number) => number,
  now: number,
  zone: string,
): QuotaStatus {
  const status = quotaStatus(budgets, used, now, zone)
  if (status.exceeded) throw overBudgetError(status.exceeded, now, zone)
  return status
}

/**
 * The 80 % and 100 % marks a device passed between two readings of its budgets (before and after a request
 * was recorded), for the `quota` event and the owner's notice. A new window starts the marks over.
 */
export function quotaCrossings(deviceId: string, before: QuotaStatus, after: QuotaStatus): QuotaCrossing[] {
  const out: QuotaCrossing[] = []
  for (const a of after.windows) {
    if (a.budget === null || a.budget === 0) continue
    const b = before.windows.find((w) => w.window === a.window && w.starts_at === a.starts_at)
    const prev = b ? b.used : 0
    for (const threshold of [80, 100] as const) {
      const mark = (a.budget * threshold) / 100
      if (prev < mark && a.used >= mark) {
        out.push({
          device_id: deviceId,
          window: a.window,
          threshold,
          used: a.used,
          budget: a.budget,
          resets_at: a.resets_at,
        })
      }
    }
  }
  return out
}

import type { Knex } from 'knex'
import { type Clock, systemClock } from '../fairshare/clock'
import { promFamily, type PromSample } from '../fairshare/metrics'
import type { UsageSeriesResponse, UsageTotals } from '../protocol/api'
import type { AllowedHours, Device, DeviceLimitsView, HoursStatus, Role } from '../protocol/types'
import { usageRepo } from '../store/access'
import { usageRollupsRepo } from '../store/usage-rollups'
import { checkHours, hoursStatus, oneMoreHour } from './hours'
import {
  checkQuota,
  effectiveBudgets,
  QUOTA_WINDOWS,
  type QuotaStatus,
  quotaStatus,
  type TokenBudgets,
} from './quota'
import type { UsageRecorder } from './recorder'
import { type SeriesOptions, type UsageSeriesQueryInput, usageSeries, usageSeriesCsv } from './series'
import { hostTimeZone, windowAt } from './zoned'

/** What the budgets and hours of a device are read from: its own values, then its role's. */
type LimitFields = 'allowed_hours' | 'token_budget_day' | 'token_budget_week' | 'token_budget_month'
type LimitedDevice = Pick<Device, 'id' | LimitFields>
type LimitedRole = Pick<Role, LimitFields>

export interface UsageServiceOptions {
  db: () => Knex
  /** Its buffered, not yet written tokens count toward budgets at once. */
  recorder?: UsageRecorder
  clock?: Clock
  /** @default the process's time zone */
  timeZone?: () => string
}

/**
 * Budgets, allowed hours and usage over time for one host, read from the hourly rollups (plus what the
 * recorder still holds). The gateway's admission calls `checkHours` and `checkQuota`.
 */
export class UsageService {
  private readonly clock: Clock

  constructor(private readonly options: UsageServiceOptions) {
    this.clock = options.clock ?? systemClock
  }

  /**
   * A device's usage totals as the device sees them at once: the stored rows plus what the batch recorder
   * holds but has not written yet (read in that order, so a batch committing meanwhile is not counted twice).
   */
  async totals(deviceId: string): Promise<UsageTotals> {
    const stored = await usageRepo.totals(this.options.db(), deviceId)
    const pending = this.options.recorder?.pendingTotals(deviceId)
    if (!pending) return stored
    return {
      requests: stored.requests + pending.requests,
      prompt_tokens: stored.prompt_tokens + pending.prompt_tokens,
      completion_tokens: stored.completion_tokens + pending.completion_tokens,
    }
  }

  /** Writes what the batch recorder holds now (for reports that read the stored rows). Never rejects. */
  writePending(): Promise<void> {
    return this.options.recorder?.flush() ?? Promise.resolve()
  }

  get zone(): string {
    return this.options.timeZone?.() ?? hostTimeZone()
  }

  /**
   * Admission's one call for budgets and hours: FORBIDDEN (403) outside the allowed hours, then
   * RATE_LIMITED (429) over a budget; both with `retry_after_s`. The device's own values win over its role's.
   */
  async admit(
    device: LimitedDevice,
    role: LimitedRole | null,
    now = this.clock.now(),
  ): Promise<{ hours: HoursStatus; quota: QuotaStatus }> {
    const hours = await this.checkHours(device.id, device.allowed_hours ?? role?.allowed_hours ?? null, now)
    const quota = await this.checkQuota(device.id, effectiveBudgets(role, device), now)
    return { hours, quota }
  }

  /** What `/api/me` shows a device: remaining per window with resets, and when its hours change. */
  async limits(
    device: LimitedDevice,
    role: LimitedRole | null,
    now = this.clock.now(),
  ): Promise<DeviceLimitsView> {
    const quota = await this.quota(device.id, effectiveBudgets(role, device), now)
    const hours = await this.hours(device.id, device.allowed_hours ?? role?.allowed_hours ?? null, now)
    return {
      time_zone: this.zone,
      quota: quota.windows.map(({ window, budget, used, remaining, resets_at }) => ({
        window,
        budget,
        used,
        remaining,
        resets_at,
      })),
      hours,
    }
  }

  /** Tokens per window, remaining and reset, for `/api/me` and the dashboard. */
  async quota(deviceId: string, budgets: TokenBudgets, now = this.clock.now()): Promise<QuotaStatus> {
    const used = await this.usedSince(deviceId, now)
    return quotaStatus(budgets, used, now, this.zone)
  }

  /** Admission: RATE_LIMITED (429, Retry-After at the reset) when a budget is used up. */
  async checkQuota(deviceId: string, budgets: TokenBudgets, now = this.clock.now()): Promise<QuotaStatus> {
    if (budgets.day === null && budgets.week === null && budgets.month === null) {
      return quotaStatus(budgets, () => 0, now, this.zone)
    }
    const used = await this.usedSince(deviceId, now)
    return checkQuota(budgets, used, now, this.zone)
  }

  async hours(deviceId: string, schedule: AllowedHours | null, now = this.clock.now()): Promise<HoursStatus> {
    const grant = await usageRollupsRepo.grantUntil(this.options.db(), deviceId, now)
    return hoursStatus(schedule, now, this.zone, grant)
  }

  /** Admission: FORBIDDEN (403) outside the allowed hours, naming the next opening. */
  async checkHours(
    deviceId: string,
    schedule: AllowedHours | null,
    now = this.clock.now(),
  ): Promise<HoursStatus> {
    if (schedule === null) return hoursStatus(null, now, this.zone)
    const grant = await usageRollupsRepo.grantUntil(this.options.db(), deviceId, now)
    return checkHours(schedule, now, this.zone, grant)
  }

  /** The owner's "one more hour" for a device; returns until when it may use the gateway. */
  async grantOneMoreHour(deviceId: string, schedule: AllowedHours | null, actor: string): Promise<number> {
    const now = this.clock.now()
    const db = this.options.db()
    const grant = await usageRollupsRepo.grantUntil(db, deviceId, now)
    const until = oneMoreHour(schedule, now, this.zone, grant)
    await usageRollupsRepo.addGrant(db, deviceId, until, actor, now)
    return until
  }

  series(query: UsageSeriesQueryInput | unknown, deviceId?: string): Promise<UsageSeriesResponse> {
    const opts: SeriesOptions = { zone: this.zone, now: this.clock.now(), deviceId }
    return usageSeries(this.options.db(), query, opts)
  }

  async csv(query: UsageSeriesQueryInput | unknown, deviceId?: string): Promise<string> {
    return usageSeriesCsv(await this.series(query, deviceId))
  }

  /**
   * `/metrics` lines: sharedllm_quota_remaining_tokens{device,window} for each device with a budget, and
   * sharedllm_usage_tokens{device,model,kind}, the tokens in the rollups (within their retention).
   */
  async metricsLines(
    devices: Array<{ id: string; label: string; budgets: TokenBudgets }>,
  ): Promise<string[]> {
    const now = this.clock.now()
    const remaining: PromSample[] = []
    for (const d of devices) {
      if (QUOTA_WINDOWS.every((w) => d.budgets[w] === null)) continue
      const q = await this.quota(d.id, d.budgets, now)
      for (const w of q.windows) {
        if (w.remaining !== null) remaining.push([{ device: d.label, window: w.window }, w.remaining])
      }
    }
    const labels = new Map(devices.map((d) => [d.id, d.label]))
    const tokens: PromSample[] = []
    for (const r of await usageRollupsRepo.totalsSince(this.options.db(), 0)) {
      const device = labels.get(r.device_id) ?? (r.device_id || 'admin')
      tokens.push([{ device, model: r.model, kind: 'prompt' }, r.prompt_tokens])
      tokens.push([{ device, model: r.model, kind: 'completion' }, r.completion_tokens])
    }
    return [
      ...promFamily(
        'sharedllm_quota_remaining_tokens',
        'Tokens left in each budget window (day, week, month) of a device with a budget',
        'gauge',
        remaining,
      ),
      ...promFamily(
        'sharedllm_usage_tokens',
        'Tokens recorded in the hourly usage rollups (kept usage_rollup_retention_days), by device, model and kind',
        'gauge',
        tokens,
      ),
    ]
  }

  /** A device's tokens since a window start: the rollups plus what the recorder still holds. */
  async usedSince(deviceId: string, now: number): Promise<(from: number) => number> {
    const starts = QUOTA_WINDOWS.map((w) => windowAt(w, now, this.zone)[0])
    const stored = await usageRollupsRepo.tokensSince(this.options.db(), deviceId, starts)
    const byStart = new Map(starts.map((s, i) => [s, stored[i] ?? 0]))
    return (from) => (byStart.get(from) ?? 0) + (this.options.recorder?.pendingTokens(deviceId, from) ?? 0)
  }
}

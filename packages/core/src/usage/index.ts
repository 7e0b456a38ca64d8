export { checkHours, hoursStatus, oneMoreHour } from './hours'
export {
  checkQuota,
  effectiveBudgets,
  overBudgetError,
  QUOTA_WINDOWS,
  type QuotaStatus,
  type QuotaWindowStatus,
  quotaCrossings,
  quotaStatus,
  type TokenBudgets,
} from './quota'
export { type UsageEvent, UsageRecorder, type UsageRecorderOptions } from './recorder'
export { bucketStarts, usageSeries, usageSeriesCsv, usageSeriesQuerySchema, waitQuantile } from './series'
export { UsageService, type UsageServiceOptions } from './service'
export {
  hostTimeZone,
  instantOf,
  isoLocal,
  isTimeZone,
  offsetAt,
  type QuotaWindow,
  shortLocal,
  startOfHour,
  wallTime,
  windowAt,
} from './zoned'
export { QuotaWatch, type QuotaWatchOptions } from './watch'
export { QUEUE_WAIT_BOUNDS_MS } from '../store/usage-rollups'

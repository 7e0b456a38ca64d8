export { type Clock, systemClock, VirtualClock } from './clock'
export { estimatePromptTokens, estimateTextTokens, IMAGE_TOKENS } from './estimate'
export { renderQueueMetrics } from './metrics'
export {
  type ExactCounts,
  FairScheduler,
  type FairSchedulerOptions,
  type Lease,
  type PauseMode,
  QUEUE_WAIT_BUCKETS_S,
  type QueueLimits,
  queueLimitsOf,
  type QueueRequest,
  type Ticket,
} from './scheduler'
export {
  type ModelTraits,
  numParallelFromEnv,
  QueueService,
  type QueueServiceOptions,
  SERIAL_FAMILIES,
  traitsFromShow,
} from './service'

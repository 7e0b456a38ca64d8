export { SharedCache } from './cache'
export * from './fit'
export * from './http/index'
export * from './keep-alive'
export { GatewayMetrics } from './metrics'
export { pullModelName, requestModel } from './model-name'
export * from './patterns'
export {
  type Admission,
  type BodySource,
  GatewayPolicy,
  type GatewayPolicyOptions,
  type ModelCatalog,
  OWNER_BODY_LIMIT,
} from './policy'
export * from './request-body'
export { OWNER_QUEUE_ID, type QueuedRun, QueueStage } from './queue'

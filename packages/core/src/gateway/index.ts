export * from './fit'
export * from './keep-alive'
export { GatewayMetrics } from './metrics'
export * from './patterns'
export {
  type Admission,
  type AdmitRequest,
  GatewayPolicy,
  type GatewayPolicyOptions,
  type ModelCatalog,
} from './policy'

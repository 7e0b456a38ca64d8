export { defineProvider, isDefinedProvider, validateDevices } from './define'
export { commandMissing, isCommandMissing } from './errors'
export {
  BUILTIN_PROVIDER_PACKAGES,
  type LoadProvidersOptions,
  type LoadProvidersResult,
  loadProviders,
  loadProvidersDetailed,
} from './load'
export { createRealHost } from './real-host'
export { ProviderSet, type ProviderSetOptions } from './set'
export { computeTotals, MIB, primaryDevices } from './totals'
export type {
  ExecOptions,
  ExecResult,
  MemoryProvider,
  ProviderDefinition,
  ProviderDeviceInput,
  ProviderHost,
  RunningCommand,
} from './types'

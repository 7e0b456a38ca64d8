export { type CallOptions, OllamaClient, type OllamaClientOptions, type PassthroughInit } from './client'
export {
  type OllamaBackoffOptions,
  OllamaManager,
  type OllamaManagerOptions,
  type OllamaManagerSettings,
} from './manager'
export { ModelManager, type ModelManagerOptions, type PullHandle } from './models'
export { canonicalModelName, MAX_MODEL_NAME_LENGTH, sameModel, validateModelName } from './names'
export { readNdjson } from './ndjson'
export { findOllamaBinary, isProcessGone, loopbackListenAddress } from './process'
export { PullAggregate } from './pull'
export type { RawPullLine, ShowResponse } from './wire'

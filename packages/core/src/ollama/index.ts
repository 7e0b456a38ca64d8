export { type CallOptions, OllamaClient, type OllamaClientOptions, type PassthroughInit } from './client'
export {
  type OllamaBackoffOptions,
  OllamaManager,
  type OllamaManagerOptions,
  type OllamaManagerSettings,
  ownedOllamaEnv,
} from './manager'
export { ModelManager, type ModelManagerOptions, type PullHandle } from './models'
export {
  canonicalModelName,
  MAX_MODEL_NAME_LENGTH,
  type ModelSource,
  type ResolvedName,
  resolveModelName,
  sameModel,
  validateModelName,
} from './names'
export { readNdjson } from './ndjson'
export {
  findOllamaBinary,
  groupMembers,
  isProcessGone,
  loopbackListenAddress,
  modelStore,
  SYSTEM_MODELS_DIR,
} from './process'
export { PullAggregate } from './pull'
export type { RawPullLine, ShowResponse } from './wire'

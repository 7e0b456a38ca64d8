/** Test helpers for sharedLLM and its plugins: the memory provider conformance suite and fake hosts. */
export { type ConformanceOptions, runProviderConformance, type TestFn } from './conformance'
export {
  createFakeHost,
  type FakeCommand,
  type FakeCommandResult,
  type FakeHost,
  type FakeHostCall,
  type FakeHostOptions,
  type FakeStreamIO,
} from './fake-host'
export * from './fake-ollama'
export { type OllamaContractOptions, ollamaContract } from './ollama-contract'

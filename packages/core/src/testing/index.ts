/** Test helpers for sharedLLM and its plugins: the memory provider conformance suite and fake hosts. */
export {}

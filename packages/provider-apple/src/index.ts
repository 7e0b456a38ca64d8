// Filled in by the memory-providers work.
export const name = 'apple'

import { project } from '../vitest.shared.ts'

export default project('release', {
  test: { include: ['*.test.ts'], testTimeout: 900_000, hookTimeout: 900_000 },
})

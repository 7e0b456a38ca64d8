import { project } from '../../vitest.shared.ts'

export default project('example-clients', { test: { testTimeout: 60_000 } })

import { libraryConfig } from '../../tsup.shared.ts'

export default libraryConfig(
  {
    index: 'src/index.ts',
    'protocol/index': 'src/protocol/index.ts',
    'testing/index': 'src/testing/index.ts',
  },
  { external: ['knex', 'better-sqlite3', 'vitest'] },
)

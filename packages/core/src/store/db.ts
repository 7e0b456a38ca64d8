import { constants, existsSync } from 'node:fs'
import { access, chmod, mkdir } from 'node:fs/promises'
import { homedir } from 'node:os'
import { join, resolve } from 'node:path'
import Database from 'better-sqlite3'
import knexFactory, { type Knex } from 'knex'
import { SharedLLMError } from '../errors'
import { migrationSource } from './migrations'

export const DB_FILE_NAME = 'sharedllm.db'

export function defaultDataDir(): string {
  return process.env.SHAREDLLM_DATA_DIR
    ? resolve(process.env.SHAREDLLM_DATA_DIR)
    : join(homedir(), '.sharedllm')
}

export interface Store {
  readonly knex: Knex
  readonly file: string
  readonly dataDir: string
  close(): Promise<void>
}

/**
 * Checks an existing database file before anything writes to it. A file that is not SQLite, is corrupt,
 * or cannot be read is an error naming the file; it is never recreated or overwritten.
 */
function checkExisting(file: string): void {
  let db: Database.Database | undefined
  try {
    db = new Database(file, { fileMustExist: true })
    const rows = db.pragma('integrity_check') as Array<{ integrity_check: string }>
    const problems = rows.map((r) => r.integrity_check).filter((r) => r !== 'ok')
    if (problems.length > 0) {
      throw new SharedLLMError(
        'STORE_CORRUPT',
        `database ${file} failed its integrity check (${problems.slice(0, 3).join('; ')}); it was left untouched: restore a backup or move it away to start fresh`,
      )
    }
  } catch (err) {
    if (err instanceof SharedLLMError) throw err
    const code = (err as { code?: string }).code
    if (code === 'SQLITE_NOTADB' || code === 'SQLITE_CORRUPT') {
      throw new SharedLLMError(
        'STORE_CORRUPT',
        `database ${file} is not a valid SQLite database; it was left untouched: restore a backup or move it away to start fresh`,
        { cause: err },
      )
    }
    throw new SharedLLMError('STORE_UNREADABLE', `cannot open database ${file}: ${(err as Error).message}`, {
      cause: err,
    })
  } finally {
    db?.close()
  }
}

/** Opens `<dataDir>/sharedllm.db`: WAL, foreign keys, busy timeout, integrity check, migrations. */
export async function openStore(dataDir: string = defaultDataDir()): Promise<Store> {
  const dir = resolve(dataDir)
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 })
    // Every start, not only at creation: the database holds peer keys and claim secrets in plaintext.
    await chmod(dir, 0o700)
  } catch (err) {
    throw new SharedLLMError(
      'STORE_UNREADABLE',
      `cannot create data directory ${dir}: ${(err as Error).message}`,
      {
        cause: err,
      },
    )
  }
  const file = join(dir, DB_FILE_NAME)
  if (existsSync(file)) {
    try {
      await access(file, constants.R_OK | constants.W_OK)
    } catch (err) {
      throw new SharedLLMError(
        'STORE_UNREADABLE',
        `database ${file} is not readable and writable by this user`,
        {
          cause: err,
        },
      )
    }
    checkExisting(file)
  }

  const knex = knexFactory({
    client: 'better-sqlite3',
    connection: { filename: file },
    useNullAsDefault: true,
    pool: {
      min: 1,
      max: 1,
      afterCreate: (conn: Database.Database, done: (err: Error | null, conn: Database.Database) => void) => {
        try {
          conn.pragma('journal_mode = WAL')
          // NORMAL in WAL mode loses nothing when the process dies; only an OS crash can drop the last commits.
          conn.pragma('synchronous = NORMAL')
          conn.pragma('foreign_keys = ON')
          conn.pragma('busy_timeout = 5000')
          done(null, conn)
        } catch (err) {
          done(err as Error, conn)
        }
      },
    },
    migrations: { migrationSource, tableName: 'knex_migrations' },
  })

  try {
    await knex.migrate.latest()
    // The WAL and shared-memory files hold the same data as the database: owner-only too.
    for (const f of [file, `${file}-wal`, `${file}-shm`]) {
      await chmod(f, 0o600).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'ENOENT') throw err
      })
    }
  } catch (err) {
    await knex.destroy().catch(() => {})
    throw new SharedLLMError(
      'STORE_UNREADABLE',
      `cannot prepare database ${file}: ${(err as Error).message}`,
      {
        cause: err,
      },
    )
  }

  return {
    knex,
    file,
    dataDir: dir,
    close: () => knex.destroy(),
  }
}

/** Runs `PRAGMA integrity_check` on an open store; 'ok' when healthy. */
export async function integrityCheck(knex: Knex): Promise<string> {
  const rows = (await knex.raw('PRAGMA integrity_check')) as Array<{ integrity_check: string }>
  return rows.map((r) => r.integrity_check).join('; ')
}

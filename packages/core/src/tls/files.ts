import { randomBytes } from 'node:crypto'
import { chmod, link, mkdir, open, readFile, rename, unlink } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { SharedLLMError } from '../errors'

export interface TlsPaths {
  dir: string
  caCert: string
  caKey: string
  /** ca.crt written before ca.key is linked in, so a crash between the two can be completed at next start. */
  caCertPending: string
  serverCert: string
  serverKey: string
}

export function tlsPaths(dataDir: string): TlsPaths {
  const dir = join(dataDir, 'tls')
  return {
    dir,
    caCert: join(dir, 'ca.crt'),
    caKey: join(dir, 'ca.key'),
    caCertPending: join(dir, 'ca.crt.pending'),
    serverCert: join(dir, 'server.crt'),
    serverKey: join(dir, 'server.key'),
  }
}

/** The tls directory, owner-only even when it already existed with looser rights. */
export async function ensureTlsDir(dir: string): Promise<void> {
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 })
    await chmod(dir, 0o700)
  } catch (err) {
    throw new SharedLLMError('STORE_UNREADABLE', `cannot create ${dir}: ${(err as Error).message}`, {
      cause: err,
      details: { file: dir },
    })
  }
}

/** The file's text, or null when it does not exist; any other failure is an error naming the file. */
export async function readOptional(file: string): Promise<string | null> {
  try {
    return await readFile(file, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null
    throw new SharedLLMError('STORE_UNREADABLE', `cannot read ${file}: ${(err as Error).message}`, {
      cause: err,
      details: { file },
    })
  }
}

/** Writes to a temp file beside `file` (with `mode` from the start), fsyncs it, and returns its path. */
async function writeTemp(file: string, data: string, mode: number): Promise<string> {
  const tmp = join(dirname(file), `.${randomBytes(6).toString('hex')}.tmp`)
  const fh = await open(tmp, 'wx', mode)
  try {
    await fh.writeFile(data)
    // The umask may have narrowed the mode; set it exactly.
    await fh.chmod(mode)
    await fh.sync()
  } finally {
    await fh.close()
  }
  return tmp
}

/** Replaces `file` in one step: readers see the old content or the new, never a torn write. */
export async function writeFileAtomic(file: string, data: string, mode: number): Promise<void> {
  const tmp = await writeTemp(file, data, mode)
  try {
    await rename(tmp, file)
  } catch (err) {
    await unlink(tmp).catch(() => {})
    throw writeError(file, err)
  }
}

/**
 * Creates `file` only if it does not exist (link(2) fails with EEXIST), so a CA is never overwritten, even
 * by a second process racing this one.
 */
export async function createFileExclusive(file: string, data: string, mode: number): Promise<void> {
  const tmp = await writeTemp(file, data, mode)
  try {
    await link(tmp, file)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
      throw new SharedLLMError('CONFLICT', `${file} appeared while it was being created; start again`, {
        cause: err,
        details: { file },
      })
    }
    throw writeError(file, err)
  } finally {
    await unlink(tmp).catch(() => {})
  }
}

export async function moveExclusive(from: string, to: string): Promise<void> {
  try {
    await link(from, to)
    await unlink(from)
  } catch (err) {
    throw writeError(to, err)
  }
}

function writeError(file: string, err: unknown): SharedLLMError {
  if (err instanceof SharedLLMError) return err
  return new SharedLLMError('STORE_UNREADABLE', `cannot write ${file}: ${(err as Error).message}`, {
    cause: err,
    details: { file },
  })
}

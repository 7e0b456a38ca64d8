import { existsSync, readFileSync, realpathSync, statSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { errorMessage, SharedLLMError } from '../errors'
import type { Logger } from '../logger'
import { defineProvider, isDefinedProvider } from './define'
import type { MemoryProvider, ProviderDefinition } from './types'

/** The built-in provider packages, loaded when installed. */
export const BUILTIN_PROVIDER_PACKAGES: string[] = [
  '@sharedllm/provider-nvidia',
  '@sharedllm/provider-amd',
  '@sharedllm/provider-apple',
  '@sharedllm/provider-intel',
  '@sharedllm/provider-ram',
]

const PACKAGE_NAME_RE = /^(@[a-z0-9][a-z0-9._~-]*\/)?[a-z0-9][a-z0-9._~-]*$/

export interface LoadProvidersOptions {
  /** Where to resolve the names from (file URLs or directories), tried in order before `process.cwd()`. */
  resolveFrom?: string[]
  log?: Logger
  /**
   * Export conditions tried for a package's `exports`, in order. Tests add `@sharedllm/source` to load
   * workspace packages from their TypeScript sources. @default ['import', 'node', 'default']
   */
  conditions?: string[]
}

export interface LoadProvidersResult {
  providers: MemoryProvider[]
  /** Names that no location could resolve (not installed). */
  missing: string[]
  /** Names that resolved but failed to import or did not export a valid provider. */
  broken: { name: string; error: SharedLLMError }[]
}

/** Imports providers by package name; a missing package is skipped with a log line, a broken one logged. */
export async function loadProviders(
  names: string[],
  opts: LoadProvidersOptions = {},
): Promise<MemoryProvider[]> {
  return (await loadProvidersDetailed(names, opts)).providers
}

/** `loadProviders` that also says which names were missing and which were broken (and why). */
export async function loadProvidersDetailed(
  names: string[],
  opts: LoadProvidersOptions = {},
): Promise<LoadProvidersResult> {
  const result: LoadProvidersResult = { providers: [], missing: [], broken: [] }
  const bases = [...(opts.resolveFrom ?? []), process.cwd()].map(toDir)
  const conditions = opts.conditions ?? ['import', 'node', 'default']
  for (const name of [...new Set(names)]) {
    if (!PACKAGE_NAME_RE.test(name)) {
      const error = new SharedLLMError('VALIDATION', `'${name}' is not a valid npm package name`, {
        details: { package: name },
      })
      result.broken.push({ name, error })
      opts.log?.error({ package: name, err: error.message }, 'memory provider package name is invalid')
      continue
    }
    const entry = bases.map((b) => resolveEntry(name, b, conditions)).find((e) => e !== undefined)
    if (!entry) {
      result.missing.push(name)
      opts.log?.info({ package: name }, 'memory provider package is not installed; skipping it')
      continue
    }
    try {
      const mod: unknown = await import(pathToFileURL(entry).href)
      result.providers.push(providerFromModule(name, mod))
    } catch (err) {
      const error =
        err instanceof SharedLLMError && err.code === 'VALIDATION'
          ? err
          : new SharedLLMError(
              'PROVIDER_FAILED',
              `memory provider package '${name}' failed to load: ${errorMessage(err)}`,
              {
                cause: err,
                details: { package: name, entry },
              },
            )
      result.broken.push({ name, error })
      opts.log?.error({ package: name, err: error.message }, 'memory provider package is broken')
    }
  }
  return result
}

/**
 * A provider package exports its provider as `default` or `provider`, either made by `defineProvider` or
 * as a plain definition (which is then passed through `defineProvider`), or as a factory taking no arguments.
 */
function providerFromModule(name: string, mod: unknown): MemoryProvider {
  const m = mod as Record<string, unknown>
  let candidate = m.provider ?? m.default
  if (typeof candidate === 'function') candidate = (candidate as () => unknown)()
  if (isDefinedProvider(candidate)) return candidate
  if (typeof candidate === 'object' && candidate !== null && 'snapshot' in candidate) {
    return defineProvider(candidate as ProviderDefinition)
  }
  throw new SharedLLMError(
    'VALIDATION',
    `package '${name}' does not export a memory provider: export one made with defineProvider() as 'default' or 'provider'`,
    { details: { package: name } },
  )
}

function toDir(location: string): string {
  const path = location.startsWith('file:') ? fileURLToPath(location) : resolve(location)
  try {
    return statSync(path).isDirectory() ? path : dirname(path)
  } catch {
    return path
  }
}

/** Node-style lookup: `node_modules/<name>` in `base` and each parent, then the package's entry file. */
function resolveEntry(name: string, base: string, conditions: string[]): string | undefined {
  let dir = base
  for (;;) {
    const pkgDir = join(dir, 'node_modules', name)
    if (existsSync(join(pkgDir, 'package.json'))) return entryOf(realpathSync(pkgDir), conditions)
    const parent = dirname(dir)
    if (parent === dir) return undefined
    dir = parent
  }
}

function entryOf(pkgDir: string, conditions: string[]): string | undefined {
  let pkg: { exports?: unknown; module?: string; main?: string }
  try {
    pkg = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8'))
  } catch {
    return undefined
  }
  const rel =
    pkg.exports !== undefined ? pickExport(pkg.exports, conditions) : (pkg.module ?? pkg.main ?? 'index.js')
  if (!rel) return undefined
  const file = join(pkgDir, rel)
  return existsSync(file) ? file : undefined
}

function pickExport(exp: unknown, conditions: string[]): string | undefined {
  if (typeof exp === 'string') return exp
  if (Array.isArray(exp)) {
    for (const e of exp) {
      const r = pickExport(e, conditions)
      if (r) return r
    }
    return undefined
  }
  if (typeof exp !== 'object' || exp === null) return undefined
  const obj = exp as Record<string, unknown>
  if ('.' in obj) return pickExport(obj['.'], conditions)
  for (const [key, value] of Object.entries(obj)) {
    if (conditions.includes(key)) {
      const r = pickExport(value, conditions)
      if (r) return r
    }
  }
  return undefined
}

import { z } from 'zod'
import { SharedLLMError } from '../errors'
import type { SettingKey, SettingsValues } from '../protocol/settings'
import { parseInput } from '../schemas'
import { isSettingKey, SETTING_KEYS, settingDefinitions } from '../settings/definitions'
import { isLoopbackIp } from '../tls/addresses'
import { rolesRepo } from '../store/roles'
import { settingsRepo } from '../store/settings'
import { type Actor, audit, type DomainContext, securityChanged } from './context'

export interface SettingView {
  key: SettingKey
  value: unknown
  default: unknown
  description: string
  type: string
}

export interface SettingsOptions {
  /** `--allow-remote-ollama`: `ollama_host` may be a non-loopback address. @default false */
  allowRemoteOllama?: boolean
}

/** Whether an `ollama_host` URL points at this machine's loopback (`localhost`, 127/8, `::1` in any spelling). */
export function isLoopbackUrl(url: string): boolean {
  try {
    const host = new URL(url).hostname.toLowerCase()
    return host === 'localhost' || isLoopbackIp(host)
  } catch {
    return false
  }
}

/** Typed, validated settings. Values are cached in memory and written through to SQLite. */
export class SettingsService {
  private values = new Map<string, unknown>()
  /** Command-line values for this run (a copy: `set` ends one without touching the caller's object). */
  private readonly overrides: Partial<SettingsValues>

  constructor(
    private readonly ctx: DomainContext,
    overrides: Partial<SettingsValues> = {},
    private readonly opts: SettingsOptions = {},
  ) {
    this.overrides = { ...overrides }
  }

  /** Whether `--allow-remote-ollama` was given. */
  get remoteOllamaAllowed(): boolean {
    return this.opts.allowRemoteOllama === true
  }

  /**
   * Reads the stored values and checks the command-line/config ones (a bad one is a VALIDATION error naming
   * the key, so the CLI stops with it). A stored value that no longer validates, or that only the command
   * line may set, is ignored with a warning.
   */
  async load(): Promise<void> {
    for (const [key, value] of Object.entries(this.overrides)) {
      if (!isSettingKey(key)) {
        throw new SharedLLMError('VALIDATION', `unknown setting '${key}'`, { details: { field: key } })
      }
      const clean = (
        parseInput(
          z.object({ [key]: settingDefinitions[key].schema }),
          { [key]: value },
          'setting',
        ) as Record<string, unknown>
      )[key]
      this.checkPolicy(key, clean)
      ;(this.overrides as Record<string, unknown>)[key] = clean
    }
    const stored = await settingsRepo.all(this.ctx.db())
    this.values = new Map()
    for (const [key, value] of stored) {
      if (!isSettingKey(key)) continue
      if (settingDefinitions[key].configOnly) {
        this.ctx.log.warn({ key }, 'ignoring a stored value of a command-line-only setting')
        continue
      }
      // A value that no longer validates (hand-edited database, older version) falls back to the default.
      const parsed = settingDefinitions[key].schema.safeParse(value)
      const allowed = parsed.success && this.policyProblem(key, parsed.data) === null
      if (parsed.success && allowed) this.values.set(key, parsed.data)
      else this.ctx.log.warn({ key }, 'ignoring invalid stored setting; using the default')
    }
  }

  /** Rules that depend on how the host was started, not on the value's type. */
  private policyProblem(key: SettingKey, value: unknown): string | null {
    if (key === 'ollama_host' && !this.remoteOllamaAllowed && !isLoopbackUrl(value as string)) {
      return 'ollama_host: must be a loopback address (localhost, 127.0.0.1, [::1]); start the host with --allow-remote-ollama to send prompts to another machine'
    }
    return null
  }

  private checkPolicy(key: SettingKey, value: unknown): void {
    const problem = this.policyProblem(key, value)
    if (problem) throw new SharedLLMError('FORBIDDEN', problem, { details: { field: key } })
  }

  get<K extends SettingKey>(key: K): SettingsValues[K] {
    if (key in this.overrides) return this.overrides[key] as SettingsValues[K]
    if (this.values.has(key)) return this.values.get(key) as SettingsValues[K]
    return settingDefinitions[key].default
  }

  all(): SettingsValues {
    return Object.fromEntries(SETTING_KEYS.map((k) => [k, this.get(k)])) as unknown as SettingsValues
  }

  /** Every non-secret setting with its value, default and type, for `GET /api/settings`. */
  list(): SettingView[] {
    return SETTING_KEYS.filter((k) => !settingDefinitions[k].secret).map((key) => {
      const def = settingDefinitions[key]
      return {
        key,
        value: this.get(key),
        default: def.default,
        description: def.description,
        type: Array.isArray(def.default)
          ? 'string[]'
          : def.default === null
            ? 'string | null'
            : typeof def.default,
      }
    })
  }

  /**
   * Validates, stores and applies a value (audited, `setting_changed` emitted). A command-line override of
   * the same key ends here: what the owner just chose is what `get` answers from now on.
   */
  async set(key: string, value: unknown, actor: Actor = 'admin'): Promise<unknown> {
    if (!isSettingKey(key)) {
      throw new SharedLLMError('NOT_FOUND', `unknown setting '${key}'`, { details: { field: key } })
    }
    const def = settingDefinitions[key]
    if (def.configOnly) {
      throw new SharedLLMError(
        'FORBIDDEN',
        `${key}: set only from the command line or the config file (it runs code on the host), not over the API`,
        { details: { field: key } },
      )
    }
    // Wrapped so a nested problem is named in full, e.g. `allowed_hosts.0: must be a host name`.
    const clean = (
      parseInput(z.object({ [key]: def.schema }), { [key]: value }, key) as Record<string, unknown>
    )[key]
    this.checkPolicy(key, clean)
    const db = this.ctx.db()
    const before = this.get(key)
    await db.transaction(async (trx) => {
      if (key === 'default_role' && !(await rolesRepo.get(trx, clean as string))) {
        throw new SharedLLMError('VALIDATION', `default_role: role '${String(clean)}' does not exist`, {
          details: { field: key },
        })
      }
      await settingsRepo.set(trx, key, clean, this.ctx.now())
      await audit(trx, this.ctx, actor, 'setting.set', key, { value: before }, { value: clean })
    })
    this.values.set(key, clean)
    // The owner's later choice wins over a command-line override for the rest of this run, too.
    delete this.overrides[key]
    this.ctx.bus.emit('setting_changed', { key, value: def.secret ? null : clean })
    securityChanged(this.ctx, actor, 'setting.set', key)
    return clean
  }
}

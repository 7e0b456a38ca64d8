import { readFile } from 'node:fs/promises'
import { z } from 'zod'
import { SharedLLMError } from '../errors'
import type { SettingKey, SettingsValues } from '../protocol/settings'
import { SETTING_KEYS, settingDefinitions } from './definitions'

/** What a config file holds: any setting by its key, plus start-up switches that are not settings. */
export interface ConfigFile {
  settings: Partial<SettingsValues>
  /** `allow_remote_ollama: true` is the same as `--allow-remote-ollama`. */
  allowRemoteOllama: boolean
}

const configSchema = z.strictObject({
  ...(Object.fromEntries(SETTING_KEYS.map((k) => [k, settingDefinitions[k].schema.optional()])) as {
    [K in SettingKey]: z.ZodOptional<z.ZodType<SettingsValues[K]>>
  }),
  allow_remote_ollama: z.boolean().optional(),
  $schema: z.string().optional(),
})

/**
 * Reads a JSON config file (`--config <file>`, or `<data-dir>/config.json` when it exists): the only place,
 * besides the command line, where `ollama_bin` and `extra_providers` can be set. A missing optional file is
 * an empty config; a missing required one, bad JSON or a bad value is a VALIDATION error naming the file and key.
 */
export async function readConfigFile(file: string, o: { required?: boolean } = {}): Promise<ConfigFile> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' && !o.required) {
      return { settings: {}, allowRemoteOllama: false }
    }
    throw new SharedLLMError(
      'VALIDATION',
      `config file ${file}: cannot be read (${(err as Error).message})`,
      {
        cause: err,
      },
    )
  }
  if (text.length > 1024 * 1024) {
    throw new SharedLLMError('VALIDATION', `config file ${file}: larger than 1 MiB`)
  }
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch (err) {
    throw new SharedLLMError(
      'VALIDATION',
      `config file ${file}: not valid JSON (${(err as Error).message})`,
      {
        cause: err,
      },
    )
  }
  const parsed = configSchema.safeParse(json)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]
    const where = issue?.path.length ? issue.path.join('.') : ''
    const what =
      issue?.code === 'unrecognized_keys'
        ? `unknown key${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `'${k}'`).join(', ')}`
        : (issue?.message ?? 'invalid')
    throw new SharedLLMError('VALIDATION', `config file ${file}: ${where ? `${where}: ` : ''}${what}`, {
      details: where ? { field: where } : undefined,
    })
  }
  const { allow_remote_ollama, $schema: _, ...settings } = parsed.data
  return { settings: settings as Partial<SettingsValues>, allowRemoteOllama: allow_remote_ollama === true }
}

import { z } from 'zod'
import type { SettingKey, SettingsValues } from '../protocol/settings'

interface SettingDefinition<K extends SettingKey> {
  schema: z.ZodType<SettingsValues[K]>
  default: SettingsValues[K]
  description: string
  /** Secret settings are never returned by `list()`; none today, kept for tokens later issues add. */
  secret?: boolean
}

const port = z.number({ error: 'must be a number' }).int('must be a whole number').min(1).max(65535)
const hostName = z
  .string()
  .trim()
  .min(1)
  .max(253)
  .regex(/^[A-Za-z0-9.:[\]-]+$/, 'must be a host name or address')

const ollamaHost = z
  .string()
  .trim()
  .max(300)
  .refine((s) => {
    try {
      const u = new URL(s)
      return (
        (u.protocol === 'http:' || u.protocol === 'https:') && u.pathname === '/' && !u.search && !u.username
      )
    } catch {
      return false
    }
  }, 'must be an http(s) URL with no path, e.g. http://127.0.0.1:11434')
  .transform((s) => s.replace(/\/+$/, ''))

const packageName = z
  .string()
  .trim()
  .regex(/^(@[a-z0-9][a-z0-9._-]*\/)?[a-z0-9][a-z0-9._-]*$/, 'must be an npm package name')
  .max(214)

export const settingDefinitions: { [K in SettingKey]: SettingDefinition<K> } = {
  api_port: {
    schema: port,
    default: 8080,
    description: 'Port of the HTTP API and dashboard (from the next start)',
  },
  ollama_host: {
    schema: ollamaHost as unknown as z.ZodType<string>,
    default: 'http://127.0.0.1:11434',
    description: 'Where Ollama listens (loopback by default)',
  },
  ollama_bin: {
    schema: z.string().trim().min(1).max(4096).nullable(),
    default: null,
    description: 'Path of the ollama binary; null searches PATH',
  },
  auto_start_ollama: {
    schema: z.boolean(),
    default: true,
    description: 'Start ollama serve when none answers',
  },
  mdns_enabled: {
    schema: z.boolean(),
    default: true,
    description: 'Advertise and browse _sharedllm._tcp on the LAN',
  },
  trust_local_network: {
    schema: z.boolean(),
    default: false,
    description: 'Approve devices discovered over mDNS with default_role',
  },
  auto_join_discovered_hosts: {
    schema: z.boolean(),
    default: true,
    description: 'File a join request to every sharedLLM host discovered on the LAN',
  },
  default_role: {
    schema: z.string().trim().min(1).max(100),
    default: 'role-guest',
    description: 'Role for trusted discoveries and the default at approval',
  },
  host_reserve_mb: {
    schema: z
      .number()
      .int('must be a whole number')
      .min(0)
      .max(16 * 1024 * 1024),
    default: 2048,
    description: 'Memory kept back for the host itself (MiB)',
  },
  allow_oversubscription: {
    schema: z.boolean(),
    default: false,
    description: 'Let the sum of allocations exceed capacity',
  },
  default_context_tokens: {
    schema: z.number().int().min(256).max(10_000_000),
    default: 4096,
    description: 'Context length assumed for fit estimates when a request names none',
  },
  extra_providers: {
    schema: z.array(packageName).max(32),
    default: [],
    description: 'Extra memory provider packages to load by name (from the next start)',
  },
  probe_interval_ms: {
    schema: z.number().int().min(250).max(600_000),
    default: 3000,
    description: 'Memory probe cadence in ms (from the next start)',
  },
  allowed_hosts: {
    schema: z.array(hostName).max(64),
    default: [],
    description: 'Extra names accepted in the Host header',
  },
  https_port: {
    schema: z.number().int().min(0).max(65535),
    default: 8443,
    description: 'HTTPS port; 0 turns HTTPS off (from the next start)',
  },
  usage_raw_retention_days: {
    schema: z.number().int('must be a whole number of days').min(1).max(3650),
    default: 30,
    description: 'Days per-request usage rows are kept',
  },
  usage_rollup_retention_days: {
    schema: z.number().int('must be a whole number of days').min(1).max(3650),
    default: 400,
    description: 'Days hourly usage rollups are kept (charts and monthly budgets read them)',
  },
  model_switch_wait_s: {
    schema: z.number().int('must be a whole number of seconds').min(0).max(3600),
    default: 20,
    description:
      'How long the queue keeps serving a loaded model before a request for another may make Ollama switch',
  },
  ollama_num_parallel: {
    // envconfig/config.go reads OLLAMA_NUM_PARALLEL as any unsigned integer; the bound only stops nonsense.
    schema: z.number().int('must be a whole number').min(1).max(4096),
    default: 1,
    description: 'Requests an attached Ollama runs at once per model (its OLLAMA_NUM_PARALLEL, 1 by default)',
  },
}

export const SETTING_KEYS = Object.keys(settingDefinitions) as SettingKey[]

export function isSettingKey(key: string): key is SettingKey {
  return Object.hasOwn(settingDefinitions, key)
}

import { isAbsolute } from 'node:path'
import { z } from 'zod'
import type { SettingKey, SettingsValues } from '../protocol/settings'
import { ADMIN_ROLE_ID } from '../protocol/types'

interface SettingDefinition<K extends SettingKey> {
  schema: z.ZodType<SettingsValues[K]>
  default: SettingsValues[K]
  description: string
  /** Secret settings are never returned by `list()`; none today, kept for tokens later issues add. */
  secret?: boolean
  /**
   * Set only from the command line, a config file or `createHub({ settings })`, never over the API: the value
   * runs code on the host (a binary to spawn, packages to import). A value stored by an older version is ignored.
   */
  configOnly?: boolean
}

// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is refused
const hasControl = (s: string) => /[\u0000-\u001f\u007f]/.test(s)

const port = z
  .number({ error: 'must be a port number from 1 to 65535' })
  .int('must be a whole number from 1 to 65535')
  .min(1, 'must be a port number from 1 to 65535')
  .max(65535, 'must be a port number from 1 to 65535')
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
    schema: z
      .string()
      .trim()
      .min(1)
      .max(4096)
      .refine((s) => isAbsolute(s) && !hasControl(s), 'must be an absolute path')
      .nullable(),
    default: null,
    description: 'Path of the ollama binary; null searches PATH (command line or config file only)',
    configOnly: true,
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
    default: false,
    description: 'File a join request to every sharedLLM host discovered on the LAN without asking first',
  },
  default_role: {
    // An mDNS advert is anyone on the LAN: trusting it can never hand out the admin role.
    schema: z
      .string()
      .trim()
      .min(1)
      .max(100)
      .refine(
        (s) => s !== ADMIN_ROLE_ID,
        'cannot be the admin role: discovered hosts would be approved as admin',
      ),
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
    description: 'Extra memory provider packages to load by name (command line or config file only)',
    configOnly: true,
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
    schema: z
      .number({ error: 'must be a port number from 1 to 65535, or 0 for off' })
      .int('must be a port number from 1 to 65535, or 0 for off')
      .min(0, 'must be a port number from 1 to 65535, or 0 for off')
      .max(65535, 'must be a port number from 1 to 65535, or 0 for off'),
    default: 8443,
    description: 'HTTPS port; 0 turns HTTPS off (from the next start)',
  },
  usage_raw_retention_days: {
    schema: z.number().int('must be a whole number of days').min(1).max(3650),
    default: 30,
    description: 'Days per-request usage rows are kept',
  },
  usage_rollup_retention_days: {
    // Monthly budgets are summed from the rollups: fewer than a month's would shrink them in silence.
    schema: z
      .number()
      .int('must be a whole number of days')
      .min(32, 'must be at least 32 days: monthly budgets are counted from the hourly rollups')
      .max(3650),
    default: 400,
    description: 'Days hourly usage rollups are kept (charts and monthly budgets read them; at least 32)',
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
  routing: {
    schema: z.enum(['off', 'local_first', 'balanced'], {
      error: "must be 'off', 'local_first' or 'balanced'",
    }),
    default: 'local_first',
    description:
      'Pooling with paired hosts: off, local_first (a peer serves what cannot run here) or balanced (the best host)',
  },
  routing_wait_threshold_s: {
    schema: z
      .number({ error: 'must be a number of seconds from 0 to 3600' })
      .min(0, 'must be a number of seconds from 0 to 3600')
      .max(3600, 'must be a number of seconds from 0 to 3600'),
    default: 10,
    description:
      'Pooling: a request that would wait here this many seconds longer than on a peer goes to the peer',
  },
  cloud_models_enabled: {
    schema: z.boolean(),
    default: false,
    description: 'Let roles with allow_cloud run Ollama cloud models (prompts leave the network)',
  },
  ollama_kv_cache_type: {
    schema: z.enum(['f16', 'q8_0', 'q4_0']),
    default: 'f16',
    description: "Ollama's KV cache type (OLLAMA_KV_CACHE_TYPE), for fit estimates",
  },
  ollama_start_timeout_ms: {
    schema: z.number().int().min(1000).max(3_600_000),
    default: 120_000,
    description: 'How long a started ollama serve may take to answer (GPU discovery)',
  },
}

export const SETTING_KEYS = Object.keys(settingDefinitions) as SettingKey[]

export function isSettingKey(key: string): key is SettingKey {
  return Object.hasOwn(settingDefinitions, key)
}

/** Keys set only from the command line or a config file (see `configOnly`). */
export const CONFIG_ONLY_KEYS = SETTING_KEYS.filter((k) => settingDefinitions[k].configOnly)

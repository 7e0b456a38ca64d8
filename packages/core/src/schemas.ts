import { isIP } from 'node:net'
import { z } from 'zod'
import { SharedLLMError } from './errors'

/** True when a string holds a C0/C1 control character or a line/paragraph separator. */
export function hasControlCharacters(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c < 0x20 || (c >= 0x7f && c <= 0x9f) || c === 0x2028 || c === 0x2029) return true
  }
  return false
}

/** Printable, no control characters, trimmed, 1–64 characters. */
export const deviceNameSchema = z
  .string()
  .trim()
  .min(1, 'must not be empty')
  .max(64, 'must be at most 64 characters')
  .refine((s) => !hasControlCharacters(s), 'must contain only printable characters')

export const ipSchema = z
  .string()
  .trim()
  .refine((s) => isIP(s) !== 0, 'must be an IPv4 or IPv6 address')

export const MAX_MEMORY_MB = 16 * 1024 * 1024 // 16 TiB: far above any single host, low enough to catch typos

export const memoryMbSchema = z
  .number({ error: 'must be a number' })
  .int('must be a whole number of MiB')
  .min(0, 'must not be negative')
  .max(MAX_MEMORY_MB, `must be at most ${MAX_MEMORY_MB} MiB`)

/** A model pattern: a model name with optional `*` wildcards, e.g. `llama3*` or `qwen2.5:7b`. */
export const modelPatternSchema = z
  .string()
  .trim()
  .min(1, 'must not be empty')
  .max(200, 'must be at most 200 characters')
  .regex(/^[A-Za-z0-9*][A-Za-z0-9._:/*-]*$/, 'may contain letters, digits and . _ : / - * only')

export const roleNameSchema = z
  .string()
  .trim()
  .min(1, 'must not be empty')
  .max(40, 'must be at most 40 characters')
  .regex(/^[\p{L}\p{N}][\p{L}\p{N} _.-]*$/u, 'may contain letters, digits, spaces and _ . - only')

/** Each role field once; create adds the defaults, update makes every field optional. */
const roleFields = {
  name: roleNameSchema,
  max_memory_mb: memoryMbSchema.min(1, 'must be at least 1 MiB'),
  can_pull: z.boolean(),
  trust_level: z.number().int('must be a whole number').min(0).max(3),
  allowed_models: z.array(modelPatternSchema).max(200),
  requests_per_minute: z.number().int().min(1).max(100_000).nullable(),
  max_concurrent: z.number().int().min(1).max(1000),
  max_keep_alive_s: z
    .number()
    .int()
    .min(0)
    .max(7 * 24 * 3600)
    .nullable(),
  max_context_tokens: z.number().int().min(256).max(10_000_000).nullable(),
  max_body_bytes: z
    .number()
    .int()
    .min(1024, 'must be at least 1024 bytes')
    .max(64 * 1024 * 1024, 'must be at most 64 MiB'),
  max_predict_tokens: z.number().int().min(1).max(10_000_000).nullable(),
}

export const roleInputSchema = z.strictObject({
  ...roleFields,
  can_pull: roleFields.can_pull.default(false),
  trust_level: roleFields.trust_level.default(1),
  allowed_models: roleFields.allowed_models.default([]),
  requests_per_minute: roleFields.requests_per_minute.default(null),
  max_concurrent: roleFields.max_concurrent.default(1),
  max_keep_alive_s: roleFields.max_keep_alive_s.default(null),
  max_context_tokens: roleFields.max_context_tokens.default(null),
  max_body_bytes: roleFields.max_body_bytes.default(1024 * 1024),
  max_predict_tokens: roleFields.max_predict_tokens.default(null),
})
export type RoleInput = z.input<typeof roleInputSchema>

export const roleUpdateSchema = z
  .strictObject(roleFields)
  .partial()
  .refine((v) => Object.keys(v).length > 0, 'must change at least one field')
export type RoleUpdate = z.input<typeof roleUpdateSchema>

export const addDeviceSchema = z.strictObject({
  name: deviceNameSchema,
  ip: ipSchema,
  platform: z.string().trim().max(64).optional(),
})
export type AddDeviceInput = z.input<typeof addDeviceSchema>

export const approveSchema = z.strictObject({
  role_id: z.string().trim().min(1, 'must name a role').max(100),
})
export const allocationSchema = z.strictObject({ memory_mb: memoryMbSchema })

export const deviceStatusSchema = z.enum(['pending', 'approved', 'denied', 'revoked'])

/**
 * Parses with a zod schema and turns a failure into a VALIDATION error whose message names the field,
 * e.g. `max_memory_mb: must be a whole number of MiB`.
 */
export function parseInput<T extends z.ZodType>(schema: T, input: unknown, what = 'input'): z.output<T> {
  const result = schema.safeParse(input)
  if (result.success) return result.data
  const issue = result.error.issues[0]
  const field = issue && issue.path.length > 0 ? issue.path.join('.') : null
  const message = issue
    ? issue.code === 'unrecognized_keys'
      ? `unknown field${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `'${k}'`).join(', ')}`
      : issue.message
    : 'is invalid'
  throw new SharedLLMError('VALIDATION', field ? `${field}: ${message}` : `${what}: ${message}`, {
    details: {
      field,
      issues: result.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message })),
    },
  })
}

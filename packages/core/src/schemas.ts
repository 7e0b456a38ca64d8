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

/** A token budget per window: a whole number of tokens, null for none. */
export const tokenBudgetSchema = z
  .number({ error: 'must be a number of tokens or null' })
  .int('must be a whole number of tokens')
  .min(0, 'must not be negative')
  .max(1e12, 'must be at most 1e12 tokens')
  .nullable()

const hhmm = /^(?:[01]\d|2[0-3]):[0-5]\d$/

/** Minutes after midnight of an `HH:MM` time (`24:00` is 1440). */
export function minutesOfDay(time: string): number {
  return Number(time.slice(0, 2)) * 60 + Number(time.slice(3, 5))
}

export const WEEK_MINUTES = 7 * 1440

/**
 * The window's spans in minutes of the week (Sunday 00:00 = 0), each `[start, end)`, split where a window
 * wraps past Saturday midnight. A `to` at or before `from` runs into the next day.
 */
export function windowSpans(w: { days: number[]; from: string; to: string }): Array<[number, number]> {
  const from = minutesOfDay(w.from)
  const to = minutesOfDay(w.to)
  const length = to > from ? to - from : to + 1440 - from
  const spans: Array<[number, number]> = []
  for (const d of w.days) {
    const start = d * 1440 + from
    const end = start + length
    if (end <= WEEK_MINUTES) spans.push([start, end])
    else spans.push([start, WEEK_MINUTES], [0, end - WEEK_MINUTES])
  }
  return spans
}

export const allowedHoursWindowSchema = z.strictObject({
  days: z
    .array(
      z
        .number()
        .int('must be whole numbers')
        .min(0, 'must be 0 (Sunday) to 6')
        .max(6, 'must be 0 (Sunday) to 6'),
    )
    .min(1, 'must list at least one day')
    .max(7)
    .refine((d) => new Set(d).size === d.length, 'must not list a day twice'),
  from: z.string().regex(hhmm, 'must be a time HH:MM (00:00 to 23:59)'),
  to: z.string().regex(new RegExp(`${hhmm.source}|^24:00$`), 'must be a time HH:MM (00:00 to 24:00)'),
})

/** A weekly schedule (null: always open); a window that overlaps another is refused, naming it. */
export const allowedHoursSchema = z
  .array(allowedHoursWindowSchema)
  .max(50, 'must have at most 50 windows')
  .superRefine((windows, ctx) => {
    const seen: Array<{ span: [number, number]; index: number }> = []
    windows.forEach((w, index) => {
      for (const span of windowSpans(w)) {
        const other = seen.find((s) => span[0] < s.span[1] && s.span[0] < span[1])
        if (other) {
          ctx.addIssue({
            code: 'custom',
            path: [index],
            message: `overlaps window ${other.index}`,
          })
          return
        }
        seen.push({ span, index })
      }
    })
  })
  .nullable()

/** Defaults of a new custom role's fair-share and quota fields: the guest's (the least a role gets). */
export const CUSTOM_ROLE_DEFAULTS = {
  share_weight: 1,
  max_queued: 2,
  max_wait_s: 60,
  allow_cloud: false,
  token_budget_day: null,
  token_budget_week: null,
  token_budget_month: null,
  allowed_hours: null,
} as const

/** Each role field once; create adds the defaults, update makes every field optional. */
const roleFields = {
  name: roleNameSchema,
  max_memory_mb: memoryMbSchema.min(1, 'must be at least 1 MiB'),
  can_pull: z.boolean(),
  trust_level: z.number().int('must be a whole number').min(0).max(3),
  allowed_models: z.array(modelPatternSchema).max(200),
  requests_per_minute: z.number().int().min(1).max(100_000).nullable(),
  max_concurrent: z.number().int().min(1).max(1000),
  share_weight: z.number().int('must be a whole number').min(1).max(1000),
  max_queued: z.number().int('must be a whole number').min(0).max(1000),
  max_wait_s: z
    .number()
    .int('must be a whole number of seconds')
    .min(1)
    .max(24 * 3600),
  allow_cloud: z.boolean(),
  token_budget_day: tokenBudgetSchema,
  token_budget_week: tokenBudgetSchema,
  token_budget_month: tokenBudgetSchema,
  allowed_hours: allowedHoursSchema,
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
  share_weight: roleFields.share_weight.default(CUSTOM_ROLE_DEFAULTS.share_weight),
  max_queued: roleFields.max_queued.default(CUSTOM_ROLE_DEFAULTS.max_queued),
  max_wait_s: roleFields.max_wait_s.default(CUSTOM_ROLE_DEFAULTS.max_wait_s),
  allow_cloud: roleFields.allow_cloud.default(false),
  token_budget_day: roleFields.token_budget_day.default(null),
  token_budget_week: roleFields.token_budget_week.default(null),
  token_budget_month: roleFields.token_budget_month.default(null),
  allowed_hours: roleFields.allowed_hours.default(null),
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

/** PATCH /api/devices/:id/limits: the device's own budgets and hours; null falls back to the role's. */
export const deviceLimitsSchema = z
  .strictObject({
    token_budget_day: tokenBudgetSchema,
    token_budget_week: tokenBudgetSchema,
    token_budget_month: tokenBudgetSchema,
    allowed_hours: allowedHoursSchema,
  })
  .partial()
  .refine((v) => Object.keys(v).length > 0, 'must change at least one field')
export type DeviceLimitsInput = z.input<typeof deviceLimitsSchema>

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

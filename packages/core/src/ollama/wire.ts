import { z } from 'zod'
import type { ModelDetails, ModelInfo, RunningModel } from '../protocol/types'

/**
 * Schemas for what Ollama answers. Loose on purpose (unknown fields pass through, optional fields may be
 * missing or null as in the cloud and older-server fixtures), strict on the fields sharedLLM computes with.
 */

const details = z
  .looseObject({
    format: z.string().optional(),
    family: z.string().optional(),
    families: z.array(z.string()).nullable().optional(),
    parameter_size: z.string().optional(),
    quantization_level: z.string().optional(),
    parent_model: z.string().optional(),
  })
  .nullable()
  .optional()
  .transform((d): ModelDetails => d ?? {})

const bytes = z.number().nonnegative()

export const versionSchema = z.looseObject({ version: z.string() })

const tagSchema = z.looseObject({
  name: z.string(),
  model: z.string().optional(),
  size: bytes,
  digest: z.string().default(''),
  modified_at: z.string().default(''),
  remote_host: z.string().optional(),
  details,
})

export const tagsSchema = z.looseObject({
  models: z
    .array(tagSchema)
    .nullable()
    .transform((models) =>
      (models ?? []).map(
        (m): ModelInfo => ({
          name: m.name,
          model: m.model ?? m.name,
          size: m.size,
          digest: m.digest,
          modified_at: m.modified_at,
          details: m.details,
          ...(m.remote_host ? { remote_host: m.remote_host } : {}),
        }),
      ),
    ),
})

const psSchema = z.looseObject({
  name: z.string(),
  model: z.string().optional(),
  size: bytes,
  size_vram: bytes.default(0),
  digest: z.string().default(''),
  expires_at: z.string().nullable().optional(),
  // 0 (a model still loading, or an older Ollama) means unknown, not an invalid list.
  context_length: z.number().int().nonnegative().nullable().optional(),
  details,
})

export const runningSchema = z.looseObject({
  models: z
    .array(psSchema)
    .nullable()
    .transform((models) =>
      (models ?? []).map(
        (m): RunningModel => ({
          name: m.name,
          model: m.model ?? m.name,
          size: m.size,
          size_vram: m.size_vram,
          digest: m.digest,
          expires_at: m.expires_at ?? null,
          context_length: m.context_length ? m.context_length : null,
          details: m.details,
        }),
      ),
    ),
})

export const showSchema = z.looseObject({
  license: z.string().optional(),
  modelfile: z.string().optional(),
  parameters: z.string().optional(),
  template: z.string().optional(),
  system: z.string().optional(),
  details,
  /** GGUF metadata, e.g. `llama.block_count`; large arrays are null unless `verbose`. */
  model_info: z.record(z.string(), z.unknown()).default({}),
  capabilities: z.array(z.string()).optional(),
  modified_at: z.string().optional(),
})

/** `/api/show`, typed on the fields sharedLLM uses (fit estimates read `model_info`). */
export type ShowResponse = z.infer<typeof showSchema>

export const pullLineSchema = z.looseObject({
  status: z.string().optional(),
  digest: z.string().optional(),
  total: bytes.optional(),
  completed: bytes.optional(),
  error: z.string().optional(),
})

/** One line of `/api/pull` as Ollama sends it (`completed` is missing until a layer starts). */
export interface RawPullLine {
  status: string
  digest?: string
  total?: number
  completed?: number
}

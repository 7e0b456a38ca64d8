import { z } from 'zod'
import type { PeerStatusResponse } from '../protocol/api'

// A peer's answer is outside input: every field typed and bounded, unknown keys refused, so a broken or
// hostile peer cannot make this host keep megabytes or route on nonsense.
export const text = (max: number) => z.string().max(max)
const bytes = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER)
const mb = z
  .number()
  .int()
  .min(0)
  .max(1024 * 1024 * 1024)
const digest = z.string().regex(/^(sha256:)?[0-9a-f]{12,64}$/, 'must be a digest')
const modelName = z.string().min(1).max(300)
/** A reported wait past a day is nonsense; refused rather than routed on. */
export const QUEUE_WAIT_MAX_MS = 86_400_000

/** A model's `details` as Ollama lists them (api/types.go ModelDetails), bounded; unknown keys dropped. */
export const modelDetailsSchema = z
  .object({
    parent_model: text(300).optional(),
    format: text(32).optional(),
    family: text(64).optional(),
    families: z.array(text(64)).max(32).nullable().optional(),
    parameter_size: text(32).optional(),
    quantization_level: text(32).optional(),
  })
  .strip()

export const peerStatusSchema: z.ZodType<PeerStatusResponse> = z.strictObject({
  instance_id: z.string().regex(/^[A-Za-z0-9-]{8,64}$/),
  name: text(200),
  version: text(64),
  free_mb: mb.nullable(),
  total_mb: mb.nullable(),
  allocation_mb: mb,
  allowed_models: z.array(text(200)).max(500),
  ollama_running: z.boolean(),
  installed: z
    .array(
      z.strictObject({
        name: modelName,
        model: modelName,
        digest,
        size: bytes,
        modified_at: text(64),
        details: modelDetailsSchema,
        kv_bytes_per_token: bytes.nullable(),
      }),
    )
    .max(2000),
  loaded: z
    .array(
      z.strictObject({
        name: modelName,
        digest: z.union([digest, z.literal('')]),
        size: bytes,
        size_vram: bytes,
        context_length: z.number().int().min(0).max(100_000_000).nullable(),
        expires_at: text(64).nullable(),
      }),
    )
    .max(200),
  queue: z
    .record(modelName, z.number().int().min(0).max(1_000_000))
    .refine((r) => Object.keys(r).length <= 500, 'at most 500 models')
    .optional(),
  queue_wait_ms: z
    .record(modelName, z.number().int().min(0).max(QUEUE_WAIT_MAX_MS))
    .refine((r) => Object.keys(r).length <= 500, 'at most 500 models')
    .optional(),
})

/** Largest status answer read from a peer. */
export const PEER_STATUS_MAX_BYTES = 1024 * 1024

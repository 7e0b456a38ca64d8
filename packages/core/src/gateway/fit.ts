/**
 * Fit estimate: how much memory a model needs to load at a given context.
 *   weights (model size) + KV cache + a fixed overhead,
 *   KV cache = context × layers × KV heads × (key length + value length) × bytes per element.
 * Worked example (DESIGN.md): an 8B llama (32 layers, 8 KV heads, 128+128, f16) needs 128 KiB per token,
 * 512 MiB at 4096 tokens.
 */

export const MiB = 1024 * 1024
/** Compute graph, buffers and runtime beyond weights and KV cache. A round figure, on the safe side for small models. */
export const FIT_OVERHEAD_BYTES = 256 * MiB
/** f16 KV cache, Ollama's default. */
export const KV_BYTES_PER_ELEMENT = 2

export interface KvShape {
  layers: number
  kvHeads: number
  keyLength: number
  valueLength: number
}

const num = (v: unknown): number | undefined =>
  typeof v === 'number' && Number.isFinite(v) && v > 0 ? v : undefined

/** Reads the KV geometry from `/api/show`'s model_info (`<arch>.block_count`, `<arch>.attention.*`). */
export function kvShapeFromModelInfo(info: Record<string, unknown> | undefined | null): KvShape | undefined {
  if (!info) return undefined
  const arch = info['general.architecture']
  if (typeof arch !== 'string' || !/^[\w.-]{1,64}$/.test(arch)) return undefined
  const layers = num(info[`${arch}.block_count`])
  const heads = num(info[`${arch}.attention.head_count`])
  const kvHeads = num(info[`${arch}.attention.head_count_kv`]) ?? heads
  const embedding = num(info[`${arch}.embedding_length`])
  const headDim = embedding && heads ? embedding / heads : undefined
  const keyLength = num(info[`${arch}.attention.key_length`]) ?? headDim
  const valueLength = num(info[`${arch}.attention.value_length`]) ?? keyLength
  if (!layers || !kvHeads || !keyLength || !valueLength) return undefined
  return { layers, kvHeads, keyLength, valueLength }
}

export function kvCacheBytes(shape: KvShape, contextTokens: number): number {
  return (
    contextTokens *
    shape.layers *
    shape.kvHeads *
    (shape.keyLength + shape.valueLength) *
    KV_BYTES_PER_ELEMENT
  )
}

export interface FitEstimate {
  weightsBytes: number
  kvBytes: number | null
  overheadBytes: number
  totalBytes: number
  contextTokens: number
  /** Where the figure comes from: an estimate, or the real size of the loaded model from Ollama's ps. */
  source: 'estimate' | 'loaded'
}

export function estimateFit(
  weightsBytes: number,
  shape: KvShape | undefined,
  contextTokens: number,
): FitEstimate {
  const kvBytes = shape ? kvCacheBytes(shape, contextTokens) : null
  return {
    weightsBytes,
    kvBytes,
    overheadBytes: FIT_OVERHEAD_BYTES,
    totalBytes: weightsBytes + (kvBytes ?? 0) + FIT_OVERHEAD_BYTES,
    contextTokens,
    source: 'estimate',
  }
}

export const toMiB = (bytes: number): number => Math.ceil(bytes / MiB)

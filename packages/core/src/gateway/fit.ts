/**
 * Fit estimate: how much memory a model needs to load at a given context, as Ollama estimates it
 * (fs/ggml/ggml.go `GraphSize`): weights (the model file) + KV cache per layer + the compute graph
 * (`fullOffload`) + a vision projector when there is one. Worked example (DESIGN.md): an 8B llama
 * (32 layers, 8 KV heads, 128+128, f16) needs 128 KiB of KV per token, 512 MiB at 4096 tokens.
 *
 * Per-layer KV (GraphSize): `context × num_parallel × (key_length + value_length) × head_count_kv[i] ×
 * bytes per element` for attention layers; gemma3 keeps only `sliding_window × num_parallel + batch`
 * tokens on 5 of every 6 layers and gpt-oss on every other layer (`4096 × num_parallel + batch`);
 * recurrent layers (head_count_kv 0) hold a fixed f32 state. MLA (deepseek2) caches key_length_mla +
 * value_length_mla per head when the file carries them.
 */

export const MiB = 1024 * 1024
/** Ollama's default batch (api/types.go DefaultOptions NumBatch). */
export const DEFAULT_BATCH = 512
/** Assumed when the shape cannot be read: a large vocabulary for the graph term. */
const CONSERVATIVE_VOCAB = 262_144
/** Assumed KV per token when the shape cannot be read: a 70B-class llama (80 layers × 8 × 256 × f16). */
const CONSERVATIVE_KV_PER_TOKEN = 80 * 8 * 256 * 2

export type KvCacheType = 'f16' | 'q8_0' | 'q4_0'

/** fs/ggml/ggml.go kvCacheBytesPerElement. */
export function kvBytesPerElement(type: string): number {
  if (type === 'q8_0') return 1
  if (type === 'q4_0') return 0.5
  if (type === 'f32') return 4
  return 2
}

/** The parts of `/api/show` model_info the estimate reads. */
export interface KvShape {
  architecture: string
  layers: number
  /** Per layer (length `layers`); 0 marks a recurrent layer. */
  kvHeads: number[]
  heads: number
  embedding: number
  keyLength: number
  valueLength: number
  vocab: number | undefined
  slidingWindow: number | undefined
  /** `<arch>.context_length`: the trained context. */
  trainedContext: number | undefined
  /** Recurrent state per recurrent layer in elements (SSM), 0 when none. */
  recurrentElements: number
  /** The model carries a vision projector (`<arch>.vision.*` keys); its size is added as Ollama does. */
  vision: boolean
  /** Embedding-only models (`<arch>.pooling_type`): no generation graph beyond the batch. */
  embeddingOnly: boolean
  /** Values that were missing and were filled conservatively. */
  guessed: string[]
}

const num = (v: unknown): number | undefined =>
  typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : undefined

function numOrArray(v: unknown): number | number[] | undefined {
  if (Array.isArray(v)) {
    const out = v.map((x) => (typeof x === 'number' && Number.isFinite(x) && x >= 0 ? x : Number.NaN))
    return out.some(Number.isNaN) ? undefined : out
  }
  return num(v)
}

/** Whether model_info has per-layer arrays or the token list as `null` (plain `/api/show` leaves them out). */
export function needsVerboseShow(info: Record<string, unknown> | undefined | null): boolean {
  if (!info) return false
  const arch = info['general.architecture']
  if (typeof arch !== 'string') return false
  return (
    info[`${arch}.attention.head_count_kv`] === null ||
    info[`${arch}.attention.head_count`] === null ||
    (info['tokenizer.ggml.tokens'] === null && num(info[`${arch}.vocab_size`]) === undefined)
  )
}

/** Reads the KV and graph geometry from `/api/show`'s model_info (`<arch>.block_count`, `<arch>.attention.*`). */
export function kvShapeFromModelInfo(info: Record<string, unknown> | undefined | null): KvShape | undefined {
  if (!info) return undefined
  const arch = info['general.architecture']
  if (typeof arch !== 'string' || !/^[\w.-]{1,64}$/.test(arch)) return undefined
  const k = (name: string) => info[`${arch}.${name}`]
  const layers = num(k('block_count'))
  if (!layers || layers > 10_000) return undefined
  const guessed: string[] = []
  const headsRaw = numOrArray(k('attention.head_count'))
  const kvRaw = numOrArray(k('attention.head_count_kv'))
  const headsArr = Array.isArray(headsRaw) ? headsRaw : undefined
  const heads = headsArr ? Math.max(1, ...headsArr) : (headsRaw as number | undefined)
  const headsMin = headsArr ? Math.min(...headsArr.filter((h) => h > 0)) : heads
  const embedding = num(k('embedding_length'))
  if (!heads || !embedding) return undefined
  let kvHeads: number[]
  if (Array.isArray(kvRaw)) kvHeads = Array.from({ length: layers }, (_, i) => kvRaw[i] ?? kvRaw.at(-1) ?? 0)
  else if (kvRaw !== undefined) kvHeads = Array(layers).fill(kvRaw)
  else {
    // GraphSize's default is 1 KV head; null here means a per-layer array we were not shown: assume full heads.
    if (k('attention.head_count_kv') === null) guessed.push('attention.head_count_kv')
    kvHeads = Array(layers).fill(k('attention.head_count_kv') === null ? heads : 1)
  }
  const headDim = headsMin ? embedding / headsMin : 0
  // MLA (deepseek2 and kin): the cache holds the compressed latent per head.
  const keyLength = num(k('attention.key_length_mla')) ?? num(k('attention.key_length')) ?? headDim
  const valueLength = num(k('attention.value_length_mla')) ?? num(k('attention.value_length')) ?? headDim
  const tokens = info['tokenizer.ggml.tokens']
  const vocab = Array.isArray(tokens) ? tokens.length : (num(k('vocab_size')) ?? undefined)
  if (vocab === undefined) guessed.push('tokenizer.ggml.tokens')
  const dConv = num(k('ssm.conv_kernel')) ?? 0
  const dState = num(k('ssm.state_size')) ?? 0
  const dInner = num(k('ssm.inner_size')) ?? 0
  const groups = num(k('ssm.group_count')) ?? 0
  const recurrentElements = (dConv > 0 ? (dConv - 1) * (dInner + 2 * groups * dState) : 0) + dState * dInner
  return {
    architecture: arch,
    layers,
    kvHeads,
    heads,
    embedding,
    keyLength,
    valueLength,
    vocab,
    slidingWindow: num(k('attention.sliding_window')),
    trainedContext: num(k('context_length')),
    recurrentElements,
    vision: Object.keys(info).some((key) => key.startsWith(`${arch}.vision.`) || key.startsWith('clip.')),
    embeddingOnly: k('pooling_type') !== undefined,
    guessed,
  }
}

export interface EstimateParams {
  contextTokens: number
  /** OLLAMA_NUM_PARALLEL (1 by default). */
  numParallel?: number
  kvCacheType?: string
  batch?: number
}

/** Per-layer KV bytes, as GraphSize computes them. */
export function kvCacheBytes(shape: KvShape, p: EstimateParams): number {
  const parallel = Math.max(1, p.numParallel ?? 1)
  const batch = p.batch ?? DEFAULT_BATCH
  const ctx = p.contextTokens * parallel
  const bpe = kvBytesPerElement(p.kvCacheType ?? 'f16')
  const perToken = (shape.keyLength + shape.valueLength) * bpe
  let total = 0
  for (let i = 0; i < shape.layers; i++) {
    const h = shape.kvHeads[i] ?? 0
    if (h === 0) {
      total += shape.recurrentElements * 4 // recurrent state is f32 (GraphSize)
      continue
    }
    let tokens = ctx
    if (shape.architecture === 'gemma3' && shape.slidingWindow && (i + 1) % 6 !== 0) {
      tokens = Math.min(ctx, parallel * shape.slidingWindow + batch)
    } else if ((shape.architecture === 'gptoss' || shape.architecture === 'gpt-oss') && i % 2 === 0) {
      tokens = Math.min(ctx, parallel * 4096 + batch)
    }
    total += tokens * perToken * h
  }
  return total
}

/**
 * The compute graph GraphSize reserves on a full offload: the larger of the output logits
 * (`4 × batch × (embedding + vocab)`) and the attention scratch (`4 × batch × (1 + 4·embedding +
 * context·(1 + heads))`, the llama form; the other architectures' forms are within it).
 */
export function graphBytes(shape: KvShape, p: EstimateParams): number {
  const batch = p.batch ?? DEFAULT_BATCH
  const ctx = p.contextTokens * Math.max(1, p.numParallel ?? 1)
  const vocab = shape.vocab ?? CONSERVATIVE_VOCAB
  return Math.max(
    4 * batch * (shape.embedding + vocab),
    4 * batch * (1 + 4 * shape.embedding + ctx * (1 + shape.heads)),
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
  /** The shape could not be read (or parts of it): the figure is on the safe side, never a plain "fits". */
  conservative: boolean
  /** The measured/estimated ratio applied (1 when none is known yet). */
  ratio: number
}

export function estimateFit(
  weightsBytes: number,
  shape: KvShape | undefined,
  params: EstimateParams | number,
  ratio = 1,
): FitEstimate {
  const p = typeof params === 'number' ? { contextTokens: params } : params
  let kvBytes: number
  let overhead: number
  let conservative = false
  if (shape) {
    kvBytes = kvCacheBytes(shape, p)
    overhead = graphBytes(shape, p)
    conservative = shape.guessed.length > 0
  } else {
    // Nothing known: a 70B-class KV per token and the graph of a large vocabulary.
    conservative = true
    kvBytes =
      p.contextTokens *
      Math.max(1, p.numParallel ?? 1) *
      CONSERVATIVE_KV_PER_TOKEN *
      (kvBytesPerElement(p.kvCacheType ?? 'f16') / 2)
    overhead = 4 * (p.batch ?? DEFAULT_BATCH) * (8192 + CONSERVATIVE_VOCAB)
  }
  const raw = weightsBytes + kvBytes + overhead
  const r = Number.isFinite(ratio) && ratio > 0 ? ratio : 1
  return {
    weightsBytes,
    kvBytes,
    overheadBytes: overhead,
    totalBytes: Math.ceil(raw * r),
    contextTokens: p.contextTokens,
    source: 'estimate',
    conservative,
    ratio: r,
  }
}

export const toMiB = (bytes: number): number => Math.ceil(bytes / MiB)

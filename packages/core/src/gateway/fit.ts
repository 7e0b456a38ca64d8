/**
 * Fit estimate: how much memory a model needs to load at a given context, as Ollama estimates it
 * (fs/ggml/ggml.go `GraphSize`): weights (the model file) + KV cache per layer + the compute graph
 * (`fullOffload`) + a vision projector when there is one. Worked example (DESIGN.md): an 8B llama
 * (32 layers, 8 KV heads, 128+128, f16) needs 128 KiB of KV per token, 512 MiB at 4096 tokens.
 *
 * Per-layer KV (GraphSize): `context × num_parallel × (key_length + value_length) × head_count_kv[i] ×
 * bytes per element` for attention layers; gemma3 keeps only `sliding_window × num_parallel + batch`
 * tokens on 5 of every 6 layers and gpt-oss on every other layer (`4096 × num_parallel + batch`);
 * recurrent layers (head_count_kv 0) hold a fixed f32 state. MLA (deepseek2) needs no case of its own:
 * an MLA file writes the compressed cache as `key_length` (kv_lora_rank + rope) and `value_length`
 * (kv_lora_rank) with one KV head, the per-head sizes as `key_length_mla` / `value_length_mla`
 * (convert/convert_glm4moelite.go), and GraphSize reads `key_length` × `head_count_kv`; an older deepseek2
 * file (no `_mla` keys, 16 KV heads) gets the full per-head cache, as llama.cpp allocates for it.
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
  /**
   * Loaded with one sequence whatever OLLAMA_NUM_PARALLEL says (server/sched.go load): embedding models
   * (no `completion` capability) and the architectures that do not support parallel requests.
   */
  singleSequence: boolean
}

/** server/sched.go load: families Ollama loads with num_parallel 1 (ollama/ollama#4165). */
export const SINGLE_SEQUENCE_FAMILIES: ReadonlySet<string> = new Set([
  'mllama',
  'qwen3vl',
  'qwen3vlmoe',
  'qwen35',
  'qwen35moe',
  'qwen3next',
  'lfm2',
  'lfm2moe',
  'nemotron_h',
  'nemotron_h_moe',
  'nemotron_h_omni',
])

/**
 * A safetensors model runs in Ollama's MLX runner, not llama-server (server/images.go Model.IsMLX): its
 * `/api/ps` size is the memory MLX holds so far and its context stays what it was loaded with.
 */
export function isMLX(m: { details?: { format?: string } | null }): boolean {
  return m.details?.format === 'safetensors'
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
  // fs/ggml/ggml.go EmbeddingHeadCountK/V: key_length / value_length, else embedding / heads. For MLA these
  // are already the compressed sizes; the `_mla` keys (the decompressed per-head sizes) are not the cache.
  const keyLength = num(k('attention.key_length')) ?? headDim
  const valueLength = num(k('attention.value_length')) ?? headDim
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
    singleSequence: SINGLE_SEQUENCE_FAMILIES.has(arch),
  }
}

export interface EstimateParams {
  contextTokens: number
  /** OLLAMA_NUM_PARALLEL (1 by default). */
  numParallel?: number
  kvCacheType?: string
  batch?: number
}

/**
 * A flat allowance for the graph and buffers, for callers that only know a peer's KV per token and size
 * (the pool's estimate of a model only a peer has); this host's own estimate computes the graph.
 */
export const FIT_OVERHEAD_BYTES = 256 * MiB

/** Per-layer KV bytes, as GraphSize computes them (a number: that context, one sequence, f16). */
export function kvCacheBytes(shape: KvShape, params: EstimateParams | number): number {
  const p = typeof params === 'number' ? { contextTokens: params } : params
  const parallel = Math.max(1, p.numParallel ?? 1)
  const batch = p.batch ?? DEFAULT_BATCH
  const ctx = p.contextTokens * parallel
  const bpe = kvBytesPerElement(p.kvCacheType ?? 'f16')
  const perToken = (shape.keyLength + shape.valueLength) * bpe
  // The sliding-window special cases use HeadCountKVMax for every layer, as GraphSize does.
  const kvMax = Math.max(0, ...shape.kvHeads)
  const gptoss = shape.architecture === 'gptoss' || shape.architecture === 'gpt-oss'
  let total = 0
  for (let i = 0; i < shape.layers; i++) {
    const h = shape.kvHeads[i] ?? 0
    if (gptoss) {
      total += perToken * kvMax * (i % 2 === 0 ? parallel * 4096 + batch : ctx)
      continue
    }
    if (h === 0) {
      total += shape.recurrentElements * 4 // recurrent state is f32 (GraphSize)
      continue
    }
    if (shape.architecture === 'gemma3' && shape.slidingWindow && (i + 1) % 6 !== 0) {
      total += (parallel * shape.slidingWindow + batch) * perToken * kvMax
      continue
    }
    total += ctx * perToken * h
  }
  return total
}

/**
 * The compute graph GraphSize reserves on a full offload (`fullOffload`), per architecture as
 * fs/ggml/ggml.go has it (llama, gemma*, command-r, qwen2, phi2, stablelm, deepseek2). GraphSize has no
 * formula for the others (qwen3, granite, mistral3, …; Ollama measures what llama-server allocates); there
 * the rule it uses for gpt-oss's graph is taken, without its factor 2: the GQA ratio × the KV cache / 6,
 * which grows with the context as the real graph does. The measured ratio per digest corrects the rest.
 */
export function graphBytes(shape: KvShape, p: EstimateParams): number {
  const batch = p.batch ?? DEFAULT_BATCH
  const parallel = Math.max(1, p.numParallel ?? 1)
  const ctx = p.contextTokens * parallel
  const vocab = shape.vocab ?? CONSERVATIVE_VOCAB
  const emb = shape.embedding
  const heads = shape.heads
  const kvMax = Math.max(1, ...shape.kvHeads)
  const kvMin = Math.max(1, Math.min(...shape.kvHeads.filter((h) => h > 0)))
  const logits = 4 * batch * (emb + vocab)
  switch (shape.architecture) {
    case 'llama':
    case 'llama4':
      return Math.max(4 * batch * (1 + 4 * emb + ctx * (1 + heads)), logits)
    case 'gemma':
    case 'gemma2':
    case 'gemma3':
    case 'gemma3n': {
      const g = Math.max(logits, 4 * batch * (2 + ctx + ctx * heads + 2 * emb + 2 * shape.keyLength * heads))
      return shape.architecture === 'gemma3n' ? g * 4 : g
    }
    case 'command-r':
      return Math.max(logits, 4 * batch * (2 + 4 * emb + ctx * (1 + heads)))
    case 'qwen2':
      return Math.max(logits, 4 * batch * (1 + 2 * emb + ctx + ctx * heads))
    case 'phi2':
      return Math.max(logits, 4 * batch * (1 + 4 * emb + ctx + ctx * heads))
    case 'stablelm':
      return 4 * batch * (ctx * (1 + heads) + 3 * emb + 2)
    case 'deepseek2':
      return Math.max(
        4 * batch * (3 * emb + vocab),
        4 * batch * (3 * emb + 2 + ctx * (1 + kvMax) + 2 * shape.keyLength * kvMax),
      )
    case 'gptoss':
    case 'gpt-oss':
      // GraphSize's kvTotal is the default per-layer sum (every layer at the full context), taken before
      // the gpt-oss case shrinks the sliding layers.
      return Math.floor((((2 * heads) / kvMin) * kvCacheBytes({ ...shape, architecture: '' }, p)) / 6)
    default:
      return Math.floor((heads / kvMin) * (kvCacheBytes(shape, p) / 6))
  }
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
  const given = typeof params === 'number' ? { contextTokens: params } : params
  const p = shape?.singleSequence ? { ...given, numParallel: 1 } : given
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

// The memory a loaded model takes, for /api/ps `size`. Ollama 0.33 reports the buffers llama-server logs
// (model + KV + compute + output, llm/llama_server.go memoryParsingWriter/MemorySize); the stand-in has no
// llama-server, so it computes those buffers with Ollama's own estimator: fs/ggml/ggml.go GraphSize (KV cache
// per layer, sliding windows, recurrent layers, num_parallel, OLLAMA_KV_CACHE_TYPE, graph size) plus the
// weights and the vision projector (llm/llama_server.go mmprojMemoryRequirement).

const MiB = 1024 * 1024

/** kvCacheBytesPerElement (fs/ggml/ggml.go). */
export function kvBytesPerElement(type) {
  switch (type) {
    case 'q8_0':
      return 1
    case 'q4_0':
      return 0.5
    case 'f32':
      return 4
    default:
      return 2
  }
}

/** server/images.go Model.IsMLX: a safetensors model runs in the MLX runner, not llama-server. */
export function isMLX(model) {
  return model.details?.format === 'safetensors'
}

/** A KV view over model_info (fs/ggml/ggml.go KV accessors). `arrays` holds per-layer values. */
export function kvView(model) {
  const info = model.show?.model_info ?? {}
  const arch = info['general.architecture'] ?? ''
  const get = (k) => {
    const key = `${arch}.${k}`
    if (model.verbose_arrays?.[key] !== undefined) return model.verbose_arrays[key]
    return info[key]
  }
  const uint = (k, d = 0) => {
    const v = get(k)
    return typeof v === 'number' ? v : d
  }
  const blockCount = uint('block_count')
  const perLayer = (k, d) => {
    const v = get(k)
    const arr = Array.isArray(v) ? v : [typeof v === 'number' ? v : d]
    const dflt = arr.length === 1 ? arr[0] : d
    return Array.from({ length: blockCount }, (_, i) => (i < arr.length ? arr[i] : dflt))
  }
  const maxOf = (k, d) => {
    const v = get(k)
    if (Array.isArray(v)) return Math.max(...v)
    return typeof v === 'number' ? v : d
  }
  const minOf = (k, d) => {
    const v = get(k)
    if (Array.isArray(v)) return Math.min(...v)
    return typeof v === 'number' ? v : d
  }
  const embedding = uint('embedding_length')
  const headsMin = minOf('attention.head_count', 1)
  const embeddingHeads = headsMin > 0 ? Math.floor(embedding / headsMin) : 0
  return {
    arch,
    blockCount,
    embedding,
    contextLength: uint('context_length'),
    heads: perLayer('attention.head_count', 1),
    headsMax: maxOf('attention.head_count', 1),
    headsKV: perLayer('attention.head_count_kv', 1),
    headsKVMax: maxOf('attention.head_count_kv', 1),
    headsKVMin: minOf('attention.head_count_kv', 1),
    embeddingHeads,
    headK: uint('attention.key_length', embeddingHeads),
    headV: uint('attention.value_length', embeddingHeads),
    slidingWindow: uint('attention.sliding_window'),
    ssmConv: uint('ssm.conv_kernel'),
    ssmInner: uint('ssm.inner_size'),
    ssmState: uint('ssm.state_size'),
    ssmGroups: uint('ssm.group_count'),
    vocab: model.vocab ?? 0,
  }
}

/** fs/ggml/ggml.go GraphSize: per-layer KV bytes and the full-offload graph size. */
export function graphSize(kv, context, batch, numParallel, kvCacheType) {
  context *= numParallel
  const bpe = kvBytesPerElement(kvCacheType)
  const kvs = new Array(kv.blockCount).fill(0)
  let kvTotal = 0
  for (let i = 0; i < kvs.length; i++) {
    if (kv.heads[i] > 0 && kv.headsKV[i] > 0) {
      kvs[i] = Math.floor(context * (kv.headK + kv.headV) * kv.headsKV[i] * bpe)
    } else {
      // a recurrent layer: its state is always f32
      const nEmbdR = kv.ssmConv > 0 ? (kv.ssmConv - 1) * (kv.ssmInner + 2 * kv.ssmGroups * kv.ssmState) : 0
      kvs[i] = (nEmbdR + kv.ssmState * kv.ssmInner) * 4
    }
    kvTotal += kvs[i]
  }
  const { embedding, vocab, headsMax: heads, headsKVMax: headsKV } = kv
  let full = 0
  switch (kv.arch) {
    case 'llama':
    case 'llama4':
      full = Math.max(
        4 * batch * (1 + 4 * embedding + context * (1 + heads)),
        4 * batch * (embedding + vocab),
      )
      break
    case 'gemma':
    case 'gemma2':
    case 'gemma3':
    case 'gemma3n':
      full = Math.max(
        4 * batch * (embedding + vocab),
        4 * batch * (2 + context + context * heads + 2 * embedding + 2 * kv.headK * heads),
      )
      if (kv.arch === 'gemma3n') full *= 4
      if (kv.arch === 'gemma3') {
        // every 6th layer is global; the others cache only the sliding window
        const sliding = numParallel * kv.slidingWindow + batch
        for (let i = 0; i < kvs.length; i++) {
          if ((i + 1) % 6 !== 0) kvs[i] = Math.floor(sliding * (kv.headK + kv.headV) * kv.headsKVMax * bpe)
        }
      }
      break
    case 'command-r':
      full = Math.max(
        4 * batch * (embedding + vocab),
        4 * batch * (2 + 4 * embedding + context * (1 + heads)),
      )
      break
    case 'qwen2':
      full = Math.max(
        4 * batch * (embedding + vocab),
        4 * batch * (1 + 2 * embedding + context + context * heads),
      )
      break
    case 'phi2':
      full = Math.max(
        4 * batch * (embedding + vocab),
        4 * batch * (1 + 4 * embedding + context + context * heads),
      )
      break
    case 'stablelm':
      full = 4 * batch * (context * (1 + heads) + 3 * embedding + 2)
      break
    case 'deepseek2':
      full = Math.max(
        4 * batch * (3 * embedding + vocab),
        4 * batch * (3 * embedding + 2 + context * (1 + headsKV) + 2 * kv.headK * headsKV),
      )
      break
    case 'gptoss':
    case 'gpt-oss':
      // even layers are sliding (window 4096 per sequence in the estimate), odd layers full context
      for (let i = 0; i < kvs.length; i++) {
        const per = Math.floor((kv.headK + kv.headV) * kv.headsKVMax * bpe)
        kvs[i] = i % 2 === 0 ? per * (numParallel * 4096 + batch) : per * context
      }
      break
    default:
      break
  }
  let partial = 0
  if (kv.arch === 'gptoss' || kv.arch === 'gpt-oss') {
    partial = Math.floor((((2 * kv.headsMax) / Math.max(kv.headsKVMin, 1)) * kvTotal) / 6)
  }
  // GraphSize has no formula for this architecture (it returns 0): the stand-in uses the GQA × kv / 6 rule
  // GraphSize applies to gpt-oss, so the graph still grows with the context. The GQA ratio is that of the
  // attention layers (a hybrid's recurrent layers have no KV heads).
  const kvMinAttention = Math.min(...kv.headsKV.filter((h) => h > 0), Number.POSITIVE_INFINITY)
  const gqa = kv.headsMax / (Number.isFinite(kvMinAttention) ? kvMinAttention : 1)
  if (full === 0) full = partial || Math.floor(gqa * (kvTotal / 6))
  return { kv: kvs, kvTotal: kvs.reduce((a, b) => a + b, 0), graph: full }
}

/**
 * The /api/ps size of `model` loaded with `numCtx` per sequence and `numParallel` sequences.
 * Returns { total, weights, kv, graph, projector } in bytes.
 */
export function estimate(model, { numCtx, numParallel, kvCacheType, batch = 512 }) {
  if (isMLX(model)) {
    // x/mlxrunner/client.go MemorySize: the runner's MLX active + cache memory (the manifest's tensor bytes
    // until its first status). MLX allocates the KV cache as tokens arrive, so a load at any num_ctx is
    // the weights; GraphSize is never asked (sched.go load takes the mlxrunner branch for safetensors).
    const weights = model.model_bytes ?? model.size ?? 0
    return { total: weights, weights, kv: 0, graph: 0, projector: 0 }
  }
  const projector = model.projector_bytes ?? 0
  const weights = Math.max(0, (model.model_bytes ?? model.size ?? 0) - (model.model_bytes ? 0 : projector))
  const kv = kvView(model)
  if (kv.blockCount === 0) return { total: weights + projector, weights, kv: 0, graph: 0, projector }
  const g = graphSize(kv, numCtx, batch, numParallel, kvCacheType)
  // llama.cpp keeps the graph in MiB-aligned buffers; round each part up like its log lines do
  const roundMiB = (n) => Math.ceil(n / MiB) * MiB
  const total = weights + roundMiB(g.kvTotal) + roundMiB(g.graph) + projector
  return { total, weights, kv: g.kvTotal, graph: g.graph, projector }
}

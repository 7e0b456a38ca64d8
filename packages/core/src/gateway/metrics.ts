import type { MemoryStats, OllamaStatus } from '../protocol/types'

type Labels = Record<string, string>

function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"')
}

function labelKey(labels: Labels): string {
  const parts = Object.keys(labels)
    .sort()
    .map((k) => `${k}="${escapeLabel(labels[k] ?? '')}"`)
  return parts.length ? `{${parts.join(',')}}` : ''
}

class Family {
  readonly values = new Map<string, number>()
  constructor(
    readonly name: string,
    readonly help: string,
    readonly type: 'counter' | 'gauge',
  ) {}
  add(labels: Labels, by = 1): void {
    const k = labelKey(labels)
    this.values.set(k, (this.values.get(k) ?? 0) + by)
  }
  set(labels: Labels, v: number): void {
    this.values.set(labelKey(labels), v)
  }
  render(out: string[]): void {
    out.push(`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} ${this.type}`)
    for (const [k, v] of this.values) out.push(`${this.name}${k} ${v}`)
  }
}

/** Gateway counters, rendered in the Prometheus text format for `GET /metrics`. */
export class GatewayMetrics {
  readonly requests = new Family(
    'sharedllm_requests_total',
    'Gateway requests by device, model, endpoint and status',
    'counter',
  )
  readonly tokens = new Family(
    'sharedllm_tokens_total',
    'Tokens by device, model and kind (prompt, completion)',
    'counter',
  )
  readonly rejections = new Family(
    'sharedllm_rejections_total',
    'Requests refused before reaching Ollama, by reason',
    'counter',
  )
  /** Measured `/api/ps` size over the gateway's estimate at the loaded context, per model. */
  readonly fitRatio = new Family(
    'sharedllm_fit_estimate_ratio',
    'What Ollama loaded over the fit estimate at that context, by model (1 = exact)',
    'gauge',
  )
  readonly active = new Family(
    'sharedllm_active_streams',
    'Requests in flight through the gateway, by device',
    'gauge',
  )

  render(memory: MemoryStats | null, ollama: OllamaStatus | null): string {
    const out: string[] = []
    for (const f of [this.requests, this.tokens, this.rejections, this.active, this.fitRatio]) f.render(out)
    const total = new Family('sharedllm_memory_total_bytes', 'Memory of each provider device', 'gauge')
    const used = new Family('sharedllm_memory_used_bytes', 'Used memory of each provider device', 'gauge')
    const free = new Family('sharedllm_memory_free_bytes', 'Free memory of each provider device', 'gauge')
    for (const d of memory?.devices ?? []) {
      const labels = { device: d.id, provider: d.provider, name: d.name, kind: d.kind }
      total.set(labels, d.totalBytes)
      used.set(labels, d.usedBytes)
      free.set(labels, d.freeBytes)
    }
    for (const f of [total, used, free]) f.render(out)
    const up = new Family('sharedllm_ollama_up', 'Whether Ollama answers its health check', 'gauge')
    up.set({}, ollama?.running ? 1 : 0)
    up.render(out)
    return `${out.join('\n')}\n`
  }
}

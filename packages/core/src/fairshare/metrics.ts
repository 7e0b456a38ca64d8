import type { FairScheduler } from './scheduler'
import { QUEUE_WAIT_BUCKETS_S } from './scheduler'

export type PromSample = [labels: Record<string, string>, value: number]

function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"')
}

function labelText(labels: Record<string, string>): string {
  const keys = Object.keys(labels).sort()
  return keys.length ? `{${keys.map((k) => `${k}="${escapeLabel(labels[k] ?? '')}"`).join(',')}}` : ''
}

/** One metric family in the Prometheus text format (HELP, TYPE, one line per sample). */
export function promFamily(
  name: string,
  help: string,
  type: 'counter' | 'gauge' | 'histogram',
  samples: PromSample[],
): string[] {
  const out = [`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`]
  for (const [labels, value] of samples) out.push(`${name}${labelText(labels)} ${value}`)
  return out
}

/**
 * The queue's lines for `GET /metrics`: sharedllm_queue_depth{device}, sharedllm_vtc_counter{device} and the
 * sharedllm_queue_wait_seconds histogram by role. `deviceLabel` turns an id into the label the host shows.
 */
export function renderQueueMetrics(
  scheduler: FairScheduler,
  deviceLabel: (id: string) => string = (id) => id,
): string[] {
  const snap = scheduler.snapshot()
  const depth: PromSample[] = snap.devices.map((d) => [{ device: deviceLabel(d.device_id) }, d.waiting])
  const vtc: PromSample[] = snap.devices.map((d) => [{ device: deviceLabel(d.device_id) }, d.vtc_counter])
  const hist: PromSample[] = []
  for (const h of scheduler.waitHistograms()) {
    QUEUE_WAIT_BUCKETS_S.forEach((le, i) => {
      hist.push([{ role: h.role_id, le: String(le) }, h.buckets[i] ?? 0])
    })
    hist.push([{ role: h.role_id, le: '+Inf' }, h.count])
  }
  const lines = [
    ...promFamily(
      'sharedllm_queue_depth',
      'Requests waiting in the fair-share queue, by device',
      'gauge',
      depth,
    ),
    ...promFamily(
      'sharedllm_vtc_counter',
      'Virtual token counter of each device (tokens served, input x1 and output x2, over share_weight)',
      'gauge',
      vtc,
    ),
    '# HELP sharedllm_queue_wait_seconds Time a request waited in the fair-share queue before it started, by role',
    '# TYPE sharedllm_queue_wait_seconds histogram',
  ]
  for (const [labels, v] of hist) lines.push(`sharedllm_queue_wait_seconds_bucket${labelText(labels)} ${v}`)
  for (const h of scheduler.waitHistograms()) {
    lines.push(`sharedllm_queue_wait_seconds_sum${labelText({ role: h.role_id })} ${h.sum}`)
    lines.push(`sharedllm_queue_wait_seconds_count${labelText({ role: h.role_id })} ${h.count}`)
  }
  return lines
}

import { modelAllowed } from '../gateway/patterns'
import type { EventMap, WireEventType } from './events'
import type { Role, RunningModel } from './types'

/** Who is looking: the owner (or a device whose role is admin), or a device with its current role. */
export type Viewer =
  | { kind: 'admin' }
  | { kind: 'device'; deviceId: string; role: Role; allocationMb: number }

const MiB = 1024 * 1024

/**
 * Whether a loaded model is shown to `viewer`: one its role allows, loaded at a size within its allocation
 * (the same rule as `/ollama/api/ps`, and what the gateway would admit it to use).
 */
export function runningVisibleTo(
  viewer: Viewer,
  model: Pick<RunningModel, 'name'> & { size?: number },
): boolean {
  if (viewer.kind === 'admin') return true
  if (typeof model.name !== 'string' || !modelAllowed(viewer.role.allowed_models, model.name)) return false
  return typeof model.size !== 'number' || model.size <= viewer.allocationMb * MiB
}

/**
 * The one rule of which viewer sees which wire event, and in which form: the owner sees everything; a
 * device sees events about itself, its own usage, queue positions and budget marks, and the running models
 * its role may see. Returns the payload to send (possibly narrowed), or undefined for none.
 */
export function visibleEvent<K extends WireEventType>(
  viewer: Viewer,
  type: K,
  payload: EventMap[K],
): EventMap[K] | undefined {
  if (viewer.kind === 'admin') return payload
  if (type === 'models_running') {
    const { models } = payload as EventMap['models_running']
    return { models: models.filter((m) => runningVisibleTo(viewer, m)) } as EventMap[K]
  }
  if (type === 'usage' || type === 'queue_position' || type === 'quota') {
    return (payload as { device_id?: string | null }).device_id === viewer.deviceId ? payload : undefined
  }
  // budget_reached is the owner's notice about a device; no device sees it (not even the one it names).
  if (type === 'budget_reached') return undefined
  if (type.startsWith('device_') || type === 'allocation_changed') {
    return (payload as { device?: { id?: string } }).device?.id === viewer.deviceId ? payload : undefined
  }
  return undefined
}

import type { SharedLLMError } from '../../errors'

/**
 * The gateway's open exchanges per device, so that a device whose keys die (revoked, removed, rotated)
 * loses its streams at once rather than when they finish.
 */
export class InFlight {
  private readonly byDevice = new Map<string, Set<AbortController>>()

  /** Registers an exchange; returns its signal and the function that unregisters it. */
  open(deviceId: string): { signal: AbortSignal; close: () => void } {
    const ctrl = new AbortController()
    let set = this.byDevice.get(deviceId)
    if (!set) {
      set = new Set()
      this.byDevice.set(deviceId, set)
    }
    set.add(ctrl)
    return {
      signal: ctrl.signal,
      close: () => {
        const s = this.byDevice.get(deviceId)
        if (!s) return
        s.delete(ctrl)
        if (s.size === 0) this.byDevice.delete(deviceId)
      },
    }
  }

  count(deviceId: string): number {
    return this.byDevice.get(deviceId)?.size ?? 0
  }

  /** Aborts every open exchange of the device; returns how many. */
  abortDevice(deviceId: string, reason: SharedLLMError): number {
    const set = this.byDevice.get(deviceId)
    if (!set) return 0
    this.byDevice.delete(deviceId)
    for (const ctrl of set) ctrl.abort(reason)
    return set.size
  }
}

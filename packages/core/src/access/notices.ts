import type { EventBus } from '../events'
import type { Device, DuplicateName } from '../protocol/types'

export interface JoinNoticeOptions {
  /** Join notices toasted one by one per window; the rest of the window is one coalesced notice. @default 3 */
  individual?: number
  /** @default 10_000 */
  windowMs?: number
  /** Devices named in a coalesced notice (the latest ones). @default 5 */
  sample?: number
  now?: () => number
}

/**
 * Keeps a flood of join requests from becoming a flood of toasts: the first few of a window are announced
 * as `device_pending_approval`, the rest are counted and announced once, when the window ends, as
 * `join_requests_coalesced` (the devices are in the list either way).
 */
export class JoinNotices {
  private windowStart = 0
  private inWindow = 0
  private held: { count: number; first_at: number; last_at: number; devices: Device[] } | undefined
  private timer: NodeJS.Timeout | undefined
  private readonly individual: number
  private readonly windowMs: number
  private readonly sample: number
  private readonly now: () => number

  constructor(
    private readonly bus: EventBus,
    o: JoinNoticeOptions = {},
  ) {
    this.individual = o.individual ?? 3
    this.windowMs = o.windowMs ?? 10_000
    this.sample = o.sample ?? 5
    this.now = o.now ?? Date.now
  }

  announce(device: Device, duplicates: DuplicateName[] = []): void {
    const now = this.now()
    if (now - this.windowStart >= this.windowMs) {
      this.flush()
      this.windowStart = now
      this.inWindow = 0
    }
    this.inWindow++
    if (this.inWindow <= this.individual) {
      this.bus.emit('device_pending_approval', duplicates.length ? { device, duplicates } : { device })
      return
    }
    if (!this.held) {
      this.held = { count: 0, first_at: now, last_at: now, devices: [] }
      this.timer = setTimeout(() => this.flush(), Math.max(0, this.windowStart + this.windowMs - now))
      this.timer.unref()
    }
    this.held.count++
    this.held.last_at = now
    this.held.devices = [...this.held.devices, device].slice(-this.sample)
  }

  /** Sends what is held now (window end, or stop). */
  flush(): void {
    if (this.timer) clearTimeout(this.timer)
    this.timer = undefined
    const held = this.held
    this.held = undefined
    if (held) this.bus.emit('join_requests_coalesced', held)
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer)
    this.timer = undefined
    this.held = undefined
  }
}

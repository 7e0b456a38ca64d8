import type { ServerMessage } from '@sharedllm/core/protocol'

export type SocketState = 'connecting' | 'open' | 'closed'

export interface SocketOptions {
  url: string
  /** Subprotocols; a device passes `['sharedllm', 'bearer.<key>']`. */
  protocols?: () => string[] | undefined
  onMessage: (msg: ServerMessage) => void
  onState: (state: SocketState, info: { attempt: number; retryInMs: number | null }) => void
  /** Each close the server made, with its code (4001: the credential ended). */
  onClose?: (code: number, reason: string) => void
  /** First retry delay; doubles up to `maxDelayMs`. @default 500 */
  baseDelayMs?: number
  /** @default 15000 */
  maxDelayMs?: number
  /** Injected for tests. @default globalThis.WebSocket */
  WebSocketImpl?: typeof WebSocket
  random?: () => number
}

/** Delay before reconnect attempt `attempt` (1-based): exponential with ±20 % jitter, capped. */
export function backoffDelay(attempt: number, base: number, max: number, random: () => number = Math.random) {
  const exp = Math.min(max, base * 2 ** Math.max(0, attempt - 1))
  return Math.round(exp * (0.8 + 0.4 * random()))
}

/**
 * The app's one WebSocket: reconnects with backoff after any close, and since the server sends a fresh
 * `snapshot` first on every connection, the stores re-sync by replacing their state with it.
 */
export class LiveSocket {
  private ws: WebSocket | null = null
  private attempt = 0
  private timer: ReturnType<typeof setTimeout> | null = null
  private stopped = true
  private readonly opts: Required<Omit<SocketOptions, 'protocols' | 'onClose'>> &
    Pick<SocketOptions, 'protocols' | 'onClose'>

  constructor(options: SocketOptions) {
    this.opts = {
      baseDelayMs: 500,
      maxDelayMs: 15_000,
      WebSocketImpl: globalThis.WebSocket,
      random: Math.random,
      ...options,
    }
  }

  start() {
    if (!this.stopped) return
    this.stopped = false
    this.connect()
  }

  stop() {
    this.stopped = true
    if (this.timer) clearTimeout(this.timer)
    this.timer = null
    const ws = this.ws
    this.ws = null
    if (ws && ws.readyState <= 1) ws.close(1000, 'client stopped')
    this.opts.onState('closed', { attempt: 0, retryInMs: null })
  }

  /** Drops the current connection and reconnects now (after the credentials changed). */
  restart() {
    this.stop()
    this.attempt = 0
    this.start()
  }

  private connect() {
    this.opts.onState('connecting', { attempt: this.attempt, retryInMs: null })
    let ws: WebSocket
    try {
      ws = new this.opts.WebSocketImpl(this.opts.url, this.opts.protocols?.())
    } catch {
      this.scheduleRetry()
      return
    }
    this.ws = ws
    ws.onopen = () => {
      if (this.ws !== ws) return
      this.attempt = 0
      this.opts.onState('open', { attempt: 0, retryInMs: null })
    }
    ws.onmessage = (ev) => {
      if (this.ws !== ws) return
      let msg: ServerMessage
      try {
        msg = JSON.parse(String(ev.data)) as ServerMessage
      } catch {
        return // not ours to crash on; the next snapshot re-syncs anyway
      }
      if (msg && typeof msg.type === 'string') this.opts.onMessage(msg)
    }
    ws.onclose = (ev) => {
      if (this.ws !== ws) return
      this.ws = null
      this.opts.onClose?.(ev.code, ev.reason)
      this.scheduleRetry()
    }
    ws.onerror = () => {
      // onclose follows and schedules the retry
    }
  }

  private scheduleRetry() {
    if (this.stopped) return
    this.attempt++
    const delay = backoffDelay(this.attempt, this.opts.baseDelayMs, this.opts.maxDelayMs, this.opts.random)
    this.opts.onState('closed', { attempt: this.attempt, retryInMs: delay })
    this.timer = setTimeout(() => {
      this.timer = null
      if (!this.stopped) this.connect()
    }, delay)
  }
}

export function socketUrl(location: Pick<Location, 'protocol' | 'host'> = globalThis.location): string {
  return `${location.protocol === 'https:' ? 'wss:' : 'ws:'}//${location.host}/ws`
}

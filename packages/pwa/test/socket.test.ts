import type { ServerMessage } from '@sharedllm/core/protocol'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { backoffDelay, LiveSocket, type SocketState, socketUrl } from '../src/api/socket'

/** A scripted WebSocket: the test opens, feeds and drops connections by hand. */
class ScriptedSocket {
  static made: ScriptedSocket[] = []
  readyState = 0
  onopen: (() => void) | null = null
  onmessage: ((ev: { data: string }) => void) | null = null
  onclose: (() => void) | null = null
  onerror: (() => void) | null = null
  closedWith: number | null = null
  constructor(
    readonly url: string,
    readonly protocols?: string[],
  ) {
    ScriptedSocket.made.push(this)
  }
  open() {
    this.readyState = 1
    this.onopen?.()
  }
  send(msg: unknown) {
    this.onmessage?.({ data: typeof msg === 'string' ? msg : JSON.stringify(msg) })
  }
  drop() {
    this.readyState = 3
    this.onclose?.()
  }
  close(code: number) {
    this.closedWith = code
    this.readyState = 3
  }
}

const snapshot: ServerMessage = {
  type: 'snapshot',
  devices: [],
  roles: [],
  memory: null,
  ollama: null,
  models_running: [],
  pulls: [],
}

describe('LiveSocket', () => {
  beforeEach(() => {
    vi.useFakeTimers()
    ScriptedSocket.made = []
  })
  afterEach(() => vi.useRealTimers())

  function make(protocols?: () => string[] | undefined) {
    const messages: ServerMessage[] = []
    const states: [SocketState, number | null][] = []
    const s = new LiveSocket({
      url: 'ws://host.test/ws',
      protocols,
      onMessage: (m) => messages.push(m),
      onState: (st, info) => states.push([st, info.retryInMs]),
      baseDelayMs: 100,
      maxDelayMs: 1000,
      random: () => 0.5, // no jitter
      WebSocketImpl: ScriptedSocket as unknown as typeof WebSocket,
    })
    return { s, messages, states }
  }

  it('passes the device key as a subprotocol and delivers parsed messages', () => {
    const { s, messages, states } = make(() => ['sharedllm', 'bearer.sllm_abc'])
    s.start()
    const ws = ScriptedSocket.made[0]!
    expect(ws.url).toBe('ws://host.test/ws')
    expect(ws.protocols).toEqual(['sharedllm', 'bearer.sllm_abc'])
    ws.open()
    ws.send(snapshot)
    ws.send('not json')
    ws.send({ type: 'usage', id: 1 })
    expect(messages.map((m) => m.type)).toEqual(['snapshot', 'usage'])
    expect(states.map(([st]) => st)).toEqual(['connecting', 'open'])
  })

  it('reconnects with doubling delays capped at the maximum, and resets after a good connection', () => {
    const { s, states } = make()
    s.start()
    for (let i = 0; i < 5; i++) {
      ScriptedSocket.made.at(-1)!.drop()
      vi.advanceTimersByTime(states.at(-1)![1]!)
    }
    const delays = states.filter(([st]) => st === 'closed').map(([, d]) => d)
    expect(delays).toEqual([100, 200, 400, 800, 1000])
    expect(ScriptedSocket.made).toHaveLength(6)
    ScriptedSocket.made.at(-1)!.open()
    ScriptedSocket.made.at(-1)!.drop()
    expect(states.at(-1)).toEqual(['closed', 100])
    s.stop()
  })

  it('re-syncs from the snapshot every new connection sends first', () => {
    const { s, messages } = make()
    s.start()
    ScriptedSocket.made[0]!.open()
    ScriptedSocket.made[0]!.send(snapshot)
    ScriptedSocket.made[0]!.drop()
    vi.advanceTimersByTime(100)
    ScriptedSocket.made[1]!.open()
    ScriptedSocket.made[1]!.send(snapshot)
    expect(messages.filter((m) => m.type === 'snapshot')).toHaveLength(2)
    s.stop()
  })

  it('stays down after stop and ignores a late close from the old socket', () => {
    const { s, states } = make()
    s.start()
    const ws = ScriptedSocket.made[0]!
    ws.open()
    s.stop()
    expect(ws.closedWith).toBe(1000)
    ws.drop()
    vi.advanceTimersByTime(10_000)
    expect(ScriptedSocket.made).toHaveLength(1)
    expect(states.at(-1)).toEqual(['closed', null])
  })
})

describe('backoffDelay and socketUrl', () => {
  it('jitters within ±20 %', () => {
    expect(backoffDelay(3, 500, 15_000, () => 0)).toBe(1600)
    expect(backoffDelay(3, 500, 15_000, () => 1)).toBe(2400)
    expect(backoffDelay(99, 500, 15_000, () => 0.5)).toBe(15_000)
  })
  it('follows the page’s scheme', () => {
    expect(socketUrl({ protocol: 'https:', host: 'h:8443' })).toBe('wss://h:8443/ws')
    expect(socketUrl({ protocol: 'http:', host: 'h:8080' })).toBe('ws://h:8080/ws')
  })
})

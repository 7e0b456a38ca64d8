import { type IncomingMessage, type Server, STATUS_CODES } from 'node:http'
import type { Duplex } from 'node:stream'
import type { Server as HttpsServer } from 'node:https'
import type { TLSSocket } from 'node:tls'
import {
  type EventMap,
  type EventType,
  type Hub,
  hashToken,
  isAdmin,
  type Logger,
  type Principal,
  runningVisibleTo,
  type SnapshotMessage,
  type Viewer,
  visibleEvent,
  WIRE_EVENT_TYPES,
  type WireEventType,
} from '@sharedllm/core'
import { WebSocket, WebSocketServer } from 'ws'
import { type AuthResult, authenticateWith, cookieOf, SESSION_COOKIE } from './auth'
import { type HostAllowlist, isSameOrigin } from './host-check'

export interface WsOptions {
  /**
   * Ping cadence. A client that has not answered the previous ping by the next one is dropped, so a dead
   * client goes within two periods. @default 25_000
   */
  heartbeatMs?: number
  /** A client whose unsent data passes this many bytes is dropped (a stalled phone must not grow memory). @default 1 MiB */
  maxBufferedBytes?: number
  /** Cross-origin pages allowed to open the socket (with a bearer subprotocol). @default [] */
  corsOrigins?: string[]
  logger?: Logger
}

interface Client {
  socket: WebSocket
  principal: Principal
  /** What this socket is shown (core's rule), from the device's current role. */
  viewer: Viewer
  /** Set for device keys (even with the admin role), so revoking the key closes the socket. */
  deviceId: string | null
  /** SHA-256 of the session cookie an owner's socket was opened with, so logging out closes it. */
  sessionHash: string | null
  alive: boolean
  /** Events that arrive while the snapshot is being built; sent right after it. */
  queue: string[] | null
}

const WIRE = new Set<EventType>(WIRE_EVENT_TYPES)
export const SUBPROTOCOL = 'sharedllm'
const BEARER_PROTOCOL = 'bearer.'

function protocolsOf(req: IncomingMessage): string[] {
  const header = req.headers['sec-websocket-protocol']
  if (typeof header !== 'string') return []
  return header
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean)
}

function rejectUpgrade(socket: Duplex, status: number, code: string, message: string): void {
  const body = JSON.stringify({ error: message, code })
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nConnection: close\r\nContent-Type: application/json\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  )
  setTimeout(() => socket.destroy(), 1000).unref()
}

/**
 * The live feed at `/ws`. It hangs off the HTTP server's `upgrade` event with `noServer: true` and checks
 * path, Host, Origin and credentials before accepting (express-ws is not used: it accepts the upgrade
 * before any auth runs). Domain events are serialized once and fanned out; a device socket is filtered to
 * its own device and closed (4001) when its key is revoked.
 */
export class WsHub {
  private readonly wss: WebSocketServer
  private readonly clients = new Set<Client>()
  private readonly heartbeatMs: number
  private readonly maxBuffered: number
  private readonly corsOrigins: Set<string>
  private readonly log: Logger
  private offBus: Array<() => void> = []
  private timer: NodeJS.Timeout | undefined
  private closing = false

  constructor(
    private readonly hub: Hub,
    private readonly hosts: HostAllowlist,
    opts: WsOptions = {},
  ) {
    this.heartbeatMs = opts.heartbeatMs ?? 25_000
    this.maxBuffered = opts.maxBufferedBytes ?? 1024 * 1024
    this.corsOrigins = new Set((opts.corsOrigins ?? []).map((o) => o.toLowerCase()))
    this.log = opts.logger ?? hub.log
    this.wss = new WebSocketServer({
      noServer: true,
      maxPayload: 4096,
      clientTracking: false,
      perMessageDeflate: false,
      handleProtocols: (protocols) => (protocols.has(SUBPROTOCOL) ? SUBPROTOCOL : false),
    })
  }

  get size(): number {
    return this.clients.size
  }

  /** Starts serving `/ws` on this server (HTTP or HTTPS; call once per server). */
  attach(server: Server | HttpsServer): void {
    server.on('upgrade', (req, socket, head) => {
      this.handleUpgrade(req, socket, head).catch((err) => {
        this.log.error({ err }, 'websocket upgrade failed')
        rejectUpgrade(socket, 500, 'INTERNAL', 'internal error')
      })
    })
    if (this.offBus.length > 0) return
    this.offBus.push(this.hub.bus.onAny((type, payload) => this.fanOut(type, payload)))
    this.offBus.push(this.hub.on('device_keys_revoked', ({ device_id }) => this.closeDevice(device_id)))
    this.offBus.push(this.hub.on('admin_sessions_ended', ({ session_hash }) => this.closeOwner(session_hash)))
    // A device's role or allocation changed: its sockets get the view of its current role, or are closed.
    for (const type of ['device_updated', 'device_approved', 'allocation_changed'] as const) {
      this.offBus.push(this.hub.on(type, ({ device }) => void this.refreshDevices([device.id])))
    }
    this.offBus.push(
      this.hub.on('role_changed', ({ role }) => {
        const ids = [...this.clients]
          .filter((c) => c.principal.kind === 'device' && c.principal.role.id === role.id)
          .map((c) => c.deviceId as string)
        void this.refreshDevices([...new Set(ids)])
      }),
    )
    this.timer = setInterval(() => this.heartbeat(), this.heartbeatMs)
    this.timer.unref()
  }

  private async authenticate(req: IncomingMessage): Promise<AuthResult | null> {
    const bearer = protocolsOf(req).find((p) => p.startsWith(BEARER_PROTOCOL))
    if (bearer) {
      const principal = await this.hub.access.authenticate(bearer.slice(BEARER_PROTOCOL.length))
      return principal ? { principal, via: principal.kind === 'admin' ? 'bearer' : 'device' } : null
    }
    return authenticateWith(this.hub, req)
  }

  async handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    socket.on('error', () => {}) // a reset during the handshake must not crash the process
    const path = (req.url ?? '/').split('?')[0]
    if (path !== '/ws') return rejectUpgrade(socket, 404, 'NOT_FOUND', 'no WebSocket here; use /ws')
    if (this.closing) return rejectUpgrade(socket, 503, 'UPSTREAM_UNAVAILABLE', 'the host is shutting down')
    if (!this.hosts.allowsRequest(req))
      return rejectUpgrade(socket, 403, 'FORBIDDEN', 'Host header not allowed')
    const origin = req.headers.origin
    const secure = (req.socket as TLSSocket).encrypted === true
    if (
      origin &&
      !isSameOrigin(origin, req.headers.host, secure) &&
      !this.corsOrigins.has(origin.toLowerCase())
    ) {
      return rejectUpgrade(socket, 403, 'FORBIDDEN', 'Origin not allowed')
    }
    const auth = await this.authenticate(req)
    if (!auth) return rejectUpgrade(socket, 401, 'UNAUTHORIZED', 'credential required')
    if (auth.via === 'cookie' && !origin) return rejectUpgrade(socket, 403, 'FORBIDDEN', 'Origin required')
    if (socket.destroyed || this.closing) return
    const cookie = auth.via === 'cookie' ? cookieOf(req, SESSION_COOKIE) : undefined
    const sessionHash = cookie ? hashToken(cookie) : null
    this.wss.handleUpgrade(req, socket, head, (ws) => this.accept(ws, auth.principal, sessionHash))
  }

  private accept(socket: WebSocket, principal: Principal, sessionHash: string | null): void {
    const client: Client = {
      socket,
      principal,
      viewer: this.hub.policy.viewer(principal),
      deviceId: principal.kind === 'device' ? principal.device.id : null,
      sessionHash,
      alive: true,
      queue: [],
    }
    this.clients.add(client)
    socket.on('pong', () => {
      client.alive = true
    })
    socket.on('error', () => {})
    socket.on('close', () => this.clients.delete(client))
    this.snapshot(client).then(
      (snap) => {
        const queued = client.queue ?? []
        client.queue = null
        this.send(client, JSON.stringify(snap))
        for (const data of queued) this.send(client, data)
      },
      (err) => {
        this.log.error({ err }, 'websocket snapshot failed')
        socket.close(1011, 'snapshot failed')
      },
    )
  }

  private async snapshot(client: Client): Promise<SnapshotMessage> {
    const { memory, ollama, models } = this.hub
    // The last poll's list: a snapshot must not wait on a slow Ollama.
    const running = Promise.resolve(models.lastKnownRunning())
    if (client.principal.kind === 'device' && client.viewer.kind === 'device') {
      const device = await this.hub.devices.get(client.principal.device.id)
      const viewer = client.viewer
      return {
        type: 'snapshot',
        devices: [device],
        roles: [client.principal.role],
        memory: null,
        ollama: null,
        models_running: (await running).filter((m) => runningVisibleTo(viewer, m)),
        pulls: [],
      }
    }
    const [devices, roles, models_running] = await Promise.all([
      this.hub.devices.list(),
      this.hub.roles.list(),
      running,
    ])
    return {
      type: 'snapshot',
      devices,
      roles,
      memory: memory?.latest() ?? null,
      ollama: ollama.status(),
      models_running,
      pulls: models.activePulls(),
    }
  }

  private fanOut<K extends EventType>(type: K, payload: EventMap[K]): void {
    if (this.clients.size === 0 || !WIRE.has(type)) return
    const wireType = type as WireEventType
    let data: string | undefined
    for (const client of this.clients) {
      const shown = visibleEvent(client.viewer, wireType, payload as EventMap[WireEventType])
      if (shown === undefined) continue
      // The whole payload is serialized once for everyone who sees it whole; a narrowed one per socket.
      let out: string
      if (shown === payload) {
        data ??= JSON.stringify({ type, ...(payload as object) })
        out = data
      } else {
        out = JSON.stringify({ type, ...(shown as object) })
      }
      if (client.queue) client.queue.push(out)
      else this.send(client, out)
    }
  }

  private send(client: Client, data: string): void {
    const { socket } = client
    if (socket.readyState !== WebSocket.OPEN) return
    if (socket.bufferedAmount > this.maxBuffered) {
      this.log.warn({ buffered: socket.bufferedAmount }, 'dropping a websocket client that does not keep up')
      this.clients.delete(client)
      socket.terminate()
      return
    }
    socket.send(data)
  }

  /**
   * Re-reads the device and its role for its open sockets: the same kind of view (device or admin) is
   * updated in place; a socket that would change between the device view and the admin feed, or whose
   * device is no longer approved, is closed (4003) so the client reconnects and gets a fresh snapshot.
   */
  private async refreshDevices(deviceIds: string[]): Promise<void> {
    for (const id of deviceIds) {
      const clients = [...this.clients].filter((c) => c.deviceId === id)
      if (clients.length === 0) continue
      let principal: Principal | undefined
      try {
        const device = await this.hub.devices.get(id)
        if (device.status === 'approved' && device.role_id) {
          const role = await this.hub.roles.get(device.role_id)
          principal = { kind: 'device', device, role, keyHint: '' }
        }
      } catch {
        principal = undefined
      }
      for (const client of clients) {
        if (!this.clients.has(client)) continue
        const next = principal && {
          ...principal,
          keyHint: (client.principal as { keyHint?: string }).keyHint ?? '',
        }
        if (!next || isAdmin(next) !== (client.viewer.kind === 'admin')) {
          this.clients.delete(client)
          client.socket.close(4003, next ? 'role changed; reconnect' : 'device no longer approved')
          setTimeout(() => client.socket.terminate(), 1000).unref()
          continue
        }
        client.principal = next
        client.viewer = this.hub.policy.viewer(next)
      }
    }
  }

  private closeDevice(deviceId: string): void {
    for (const client of this.clients) {
      if (client.deviceId !== deviceId) continue
      this.clients.delete(client)
      client.socket.close(4001, 'device key revoked')
      setTimeout(() => client.socket.terminate(), 1000).unref()
    }
  }

  /** Logout closes the sockets of that session; a secret reset closes every owner socket (cookie or secret). */
  private closeOwner(sessionHash: string | null): void {
    for (const client of this.clients) {
      if (client.principal.kind !== 'admin') continue
      if (sessionHash !== null && client.sessionHash !== sessionHash) continue
      this.clients.delete(client)
      client.socket.close(4001, 'session ended')
      setTimeout(() => client.socket.terminate(), 1000).unref()
    }
  }

  private heartbeat(): void {
    for (const client of this.clients) {
      if (!client.alive) {
        this.clients.delete(client)
        client.socket.terminate()
        continue
      }
      client.alive = false
      client.socket.ping()
    }
  }

  /** Stops accepting and closes every socket with 1001 (going away); resolves when all are closed. */
  async close(timeoutMs = 2000): Promise<void> {
    this.closing = true
    for (const off of this.offBus) off()
    this.offBus = []
    clearInterval(this.timer)
    const sockets = [...this.clients].map((c) => c.socket)
    this.clients.clear()
    await Promise.all(
      sockets.map(
        (socket) =>
          new Promise<void>((resolve) => {
            if (socket.readyState === WebSocket.CLOSED) return resolve()
            const timer = setTimeout(() => {
              socket.terminate()
              resolve()
            }, timeoutMs)
            timer.unref()
            socket.once('close', () => {
              clearTimeout(timer)
              resolve()
            })
            socket.close(1001, 'server shutting down')
          }),
      ),
    )
    this.wss.close()
  }
}

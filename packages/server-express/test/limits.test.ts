import { connect } from 'node:net'
import request from 'supertest'
import { afterEach, describe, expect, it } from 'vitest'
import { WebSocket } from 'ws'
import { listen, type RunningServer } from '../src/listen'
import { ADMIN_SECRET, type Harness, setup } from './helpers'

let h: Harness | undefined
let running: RunningServer | undefined
afterEach(async () => {
  await running?.close()
  running = undefined
  await h?.cleanup()
  h = undefined
})

/** Sends the head of a request and a few body bytes, then stalls; resolves with what came back and when. */
function slowBody(port: number, path: string, headers = ''): Promise<{ response: string; ms: number }> {
  return new Promise((resolve, reject) => {
    const started = Date.now()
    const socket = connect(port, '127.0.0.1', () => {
      socket.write(
        `POST ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n${headers}\r\n{"name":`,
      )
    })
    let response = ''
    socket.on('data', (d) => {
      response += d.toString()
    })
    socket.on('error', reject)
    socket.on('close', () => resolve({ response, ms: Date.now() - started }))
  })
}

describe('request deadlines', () => {
  it('answers a slow /api body with 408 and closes the connection, changing nothing', async () => {
    h = await setup({ app: { apiRequestTimeoutMs: 300 } })
    running = await listen(h.hub, { port: 0, host: '127.0.0.1', pwaDir: h.pwaDir, apiRequestTimeoutMs: 300 })
    const { response, ms } = await slowBody(running.port, '/api/join')
    expect(response).toMatch(/^HTTP\/1\.1 408 /)
    expect(response).toContain('REQUEST_TIMEOUT')
    expect(ms).toBeLessThan(3000)
    expect(await h.hub.devices.list()).toEqual([])
  })

  it('closes a slow body on any other route too (server-wide request timeout)', async () => {
    h = await setup()
    running = await listen(h.hub, { port: 0, host: '127.0.0.1', pwaDir: h.pwaDir, requestTimeoutMs: 400 })
    const { response, ms } = await slowBody(
      running.port,
      '/ollama/api/chat',
      `Authorization: Bearer ${ADMIN_SECRET}\r\n`,
    )
    expect(response).toMatch(/^HTTP\/1\.1 408 /)
    expect(ms).toBeLessThan(3000)
  })

  it('never cuts what lives after the request: a WebSocket outlives the deadlines', async () => {
    h = await setup()
    running = await listen(h.hub, {
      port: 0,
      host: '127.0.0.1',
      pwaDir: h.pwaDir,
      requestTimeoutMs: 200,
      apiRequestTimeoutMs: 200,
    })
    const ws = new WebSocket(`ws://127.0.0.1:${running.port}/ws`, ['sharedllm', `bearer.${ADMIN_SECRET}`])
    const messages: string[] = []
    ws.on('message', (m) => messages.push(m.toString()))
    await new Promise((resolve, reject) => {
      ws.once('open', resolve)
      ws.once('error', reject)
    })
    const openedAt = Date.now()
    // Past two deadlines and the checking interval: still open, and still fed.
    await expect
      .poll(
        async () => {
          await h?.hub.settings.set('host_reserve_mb', 1000 + (Date.now() % 1000))
          return Date.now() - openedAt > 800 && ws.readyState === WebSocket.OPEN
        },
        { timeout: 3000, interval: 100 },
      )
      .toBe(true)
    expect(messages.some((m) => m.includes('setting_changed'))).toBe(true)
    ws.close()
  })
})

describe('admin authentication backoff over HTTP', () => {
  it('a source that keeps guessing the bearer secret gets 429 with Retry-After, even with the right one', async () => {
    h = await setup()
    const guesses = await Promise.all(
      Array.from({ length: 5 }, (_, i) =>
        request(h!.app).get('/api/devices').set('Authorization', `Bearer wrong-guess-${i}`),
      ),
    )
    expect(guesses.map((g) => g.status)).toEqual([401, 401, 401, 401, 401])
    const locked = await request(h.app).get('/api/devices').set('Authorization', `Bearer ${ADMIN_SECRET}`)
    expect(locked.status).toBe(429)
    expect(Number(locked.headers['retry-after'])).toBeGreaterThan(0)
    const login = await request(h.app).post('/api/auth/login').send({ secret: ADMIN_SECRET })
    expect(login.status).toBe(429)
  })
})

import { isIP } from 'node:net'
import { z } from 'zod'
import { type ErrorCode, SharedLLMError } from '../errors'
import { modelDetailsSchema, PEER_STATUS_MAX_BYTES, peerStatusSchema, text } from '../pool/schema'
import type {
  ClaimResponse,
  JoinRequest,
  JoinResponse,
  PeerStatusResponse,
  TlsInfoResponse,
} from '../protocol/api'
import { sanitizeName } from './sanitize'

// A peer's answers are validated strictly: exact keys, bounded sizes. Anything else is an error on the peer,
// never data we store or show.
const deviceStatus = z.enum(['pending', 'approved', 'denied', 'revoked'])
const id = z.string().regex(/^[A-Za-z0-9-]{1,64}$/, 'must be an id')
const token = z.string().regex(/^[A-Za-z0-9_-]{16,256}$/, 'must be a token')

export const joinResponseSchema: z.ZodType<JoinResponse> = z.strictObject({
  request_id: id,
  claim_secret: token,
  device_id: id,
  status: deviceStatus,
})

export const claimResponseSchema: z.ZodType<ClaimResponse> = z.strictObject({
  status: deviceStatus,
  device_id: id,
  device_key: token.optional(),
})

// Ollama's ListModelResponse (api/types.go): only these fields are kept, each bounded; the rest is dropped.
const modelEntry = z.object({
  name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,299}$/, 'must be a model name'),
  model: text(300).optional(),
  modified_at: text(64).optional(),
  size: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).optional(),
  digest: z
    .string()
    .regex(/^(sha256:)?[0-9a-f]{12,64}$/, 'must be a digest')
    .optional(),
  details: modelDetailsSchema.optional(),
})

export const tagsResponseSchema = z.strictObject({
  models: z.array(modelEntry).max(2000),
})

const port = z.number().int().min(1).max(65535)

export const tlsInfoSchema: z.ZodType<TlsInfoResponse> = z.strictObject({
  https_port: port.nullable(),
  http_port: port.nullable(),
  ca_fingerprint: z
    .string()
    .regex(/^([0-9A-Fa-f]{2}:?){32}$/, 'must be a SHA-256 fingerprint')
    .nullable(),
  https_urls: z.array(z.string().max(300)).max(64),
})

export interface PeerClientOptions {
  fetch?: typeof fetch
  /** Per request. @default 5000 */
  timeoutMs?: number
}

export type JoinBody = Required<Pick<JoinRequest, 'name' | 'platform' | 'instance_id'>>

/** `http://host:port` (or https), with brackets around IPv6 addresses. */
export function baseUrl(address: string, port: number, scheme: 'http' | 'https' = 'http'): string {
  return `${scheme}://${isIP(address) === 6 ? `[${address}]` : address}:${port}`
}

const statusCodes: Record<number, ErrorCode> = {
  400: 'UPSTREAM_ERROR',
  401: 'FORBIDDEN',
  403: 'FORBIDDEN',
  404: 'NOT_FOUND',
  409: 'CONFLICT',
  410: 'GONE',
  429: 'RATE_LIMITED',
}

/**
 * Speaks a remote sharedLLM host's join API and gateway over fetch: every call has a timeout, a size cap,
 * and its response validated; failures are SharedLLMErrors that name the host.
 */
export class PeerClient {
  private readonly fetch: typeof fetch
  private readonly timeoutMs: number

  constructor(o: PeerClientOptions = {}) {
    this.fetch = o.fetch ?? globalThis.fetch
    this.timeoutMs = o.timeoutMs ?? 5000
  }

  join(base: string, body: JoinBody, signal?: AbortSignal): Promise<JoinResponse> {
    return this.call(base, '/api/join', joinResponseSchema, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
      signal,
    })
  }

  claim(base: string, requestId: string, claimSecret: string, signal?: AbortSignal): Promise<ClaimResponse> {
    return this.call(base, `/api/join/${encodeURIComponent(requestId)}`, claimResponseSchema, {
      headers: { 'x-claim-secret': claimSecret },
      signal,
    })
  }

  /**
   * The peer's HTTPS port and CA fingerprint, or null when it has no usable `/api/tls` (an older host, or
   * one that answers it with something else): such a peer is spoken to over HTTP, as before.
   */
  async tls(base: string, signal?: AbortSignal): Promise<TlsInfoResponse | null> {
    try {
      return await this.call(base, '/api/tls', tlsInfoSchema, { signal })
    } catch (err) {
      if (err instanceof SharedLLMError && (err.code === 'NOT_FOUND' || err.code === 'UPSTREAM_ERROR'))
        return null
      throw err
    }
  }

  async models(base: string, deviceKey: string, signal?: AbortSignal): Promise<Record<string, unknown>[]> {
    const res = await this.call(
      base,
      '/ollama/api/tags',
      tagsResponseSchema,
      { headers: { authorization: `Bearer ${deviceKey}` }, signal },
      16 * 1024 * 1024,
    )
    return res.models
  }

  /** The peer's `/api/peer/status` (pooling), with our device key there; validated strictly. */
  status(base: string, deviceKey: string, signal?: AbortSignal): Promise<PeerStatusResponse> {
    return this.call(
      base,
      '/api/peer/status',
      peerStatusSchema,
      { headers: { authorization: `Bearer ${deviceKey}` }, signal },
      PEER_STATUS_MAX_BYTES,
    )
  }

  private async call<T extends z.ZodType>(
    base: string,
    path: string,
    schema: T,
    init: RequestInit,
    maxBytes = 64 * 1024,
  ): Promise<z.output<T>> {
    const url = base + path
    const signals = [AbortSignal.timeout(this.timeoutMs), ...(init.signal ? [init.signal] : [])]
    let res: Response
    let text: string
    try {
      res = await this.fetch(url, { ...init, redirect: 'error', signal: AbortSignal.any(signals) })
      text = await readCapped(res, maxBytes)
    } catch (err) {
      if (err instanceof SharedLLMError) throw err
      const name = (err as { name?: string }).name
      if (name === 'TimeoutError') {
        throw new SharedLLMError('TIMEOUT', `${base} did not answer ${path} within ${this.timeoutMs} ms`, {
          cause: err,
        })
      }
      if (name === 'AbortError') throw new SharedLLMError('CANCELLED', `${path} to ${base} was cancelled`)
      throw new SharedLLMError('UPSTREAM_UNAVAILABLE', `cannot reach ${base}: ${causeMessage(err)}`, {
        cause: err,
      })
    }
    let json: unknown
    try {
      json = text.length > 0 ? JSON.parse(text) : null
    } catch {
      json = undefined
    }
    if (!res.ok) {
      const remote = sanitizeName((json as { error?: unknown } | undefined)?.error, 200)
      throw new SharedLLMError(
        statusCodes[res.status] ?? 'UPSTREAM_ERROR',
        `${base}${path} answered ${res.status}${remote ? `: ${remote}` : ''}`,
        { details: { status: res.status } },
      )
    }
    const parsed = schema.safeParse(json)
    if (!parsed.success) {
      const issue = parsed.error.issues[0]
      const where = issue?.path.length ? `${issue.path.join('.')}: ` : ''
      throw new SharedLLMError(
        'UPSTREAM_ERROR',
        `${base}${path} sent an unexpected response (${where}${issue?.message ?? 'invalid'})`,
      )
    }
    return parsed.data
  }
}

async function readCapped(res: Response, maxBytes: number): Promise<string> {
  if (!res.body) return ''
  const reader = res.body.getReader()
  const chunks: Uint8Array[] = []
  let size = 0
  for (;;) {
    const { done, value } = await reader.read()
    if (done) break
    size += value.byteLength
    if (size > maxBytes) {
      await reader.cancel().catch(() => {})
      throw new SharedLLMError('UPSTREAM_ERROR', `${res.url} sent more than ${maxBytes} bytes`)
    }
    chunks.push(value)
  }
  return Buffer.concat(chunks).toString('utf8')
}

function causeMessage(err: unknown): string {
  const cause = (err as { cause?: { code?: string; message?: string } }).cause
  return cause?.code ?? cause?.message ?? (err as Error).message ?? String(err)
}

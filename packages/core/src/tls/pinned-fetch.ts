import type { IncomingMessage } from 'node:http'
import { request as httpsRequest } from 'node:https'
import { Readable } from 'node:stream'
import { SharedLLMError } from '../errors'
import { normalizeFingerprint } from './fingerprint'
import { PIN_ERROR, tlsOptionsForPinnedCa } from './pin'

// Handshake failures that mean "this server is not who the pin says".
const MISMATCH_CODES = new Set([
  PIN_ERROR,
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_SIGNATURE_FAILURE',
  'CERT_UNTRUSTED',
])

export interface PinnedFetchOptions {
  /** The CA certificate stored when the peer was first trusted. */
  caPem: string
  /** Its fingerprint as pinned at approval. */
  caFingerprint: string
}

/**
 * A `fetch` for https URLs that trusts only the pinned CA, to hand to `PeerClient({ fetch })`. A server
 * with a certificate from any other CA fails with CERTIFICATE_MISMATCH. Redirects are not followed (a 3xx
 * is returned as is) and each call uses its own connection.
 */
export function pinnedFetch(o: PinnedFetchOptions): typeof fetch {
  const tlsOptions = tlsOptionsForPinnedCa(o.caPem, o.caFingerprint)
  return (async (input: string | URL | Request, init: RequestInit = {}) => {
    const req = input instanceof Request ? input : undefined
    const url = new URL(req ? req.url : String(input))
    if (url.protocol !== 'https:') {
      throw new SharedLLMError('VALIDATION', `a pinned fetch only speaks https, not ${url.protocol}`, {
        details: { field: 'url' },
      })
    }
    const method = (init.method ?? req?.method ?? 'GET').toUpperCase()
    const headers = new Headers(init.headers ?? req?.headers)
    let body: Buffer | undefined
    const rawBody = init.body ?? (req?.body ? await req.arrayBuffer() : undefined)
    if (rawBody !== undefined && rawBody !== null) {
      const encoded = new Response(rawBody)
      body = Buffer.from(await encoded.arrayBuffer())
      const type = encoded.headers.get('content-type')
      if (type && !headers.has('content-type')) headers.set('content-type', type)
    }
    const signal = init.signal ?? req?.signal ?? undefined
    signal?.throwIfAborted()
    return new Promise<Response>((resolve, reject) => {
      const r = httpsRequest(
        url,
        { method, headers: Object.fromEntries(headers), ...tlsOptions, signal, agent: false },
        (res) => {
          try {
            resolve(toResponse(res, url, method))
          } catch (err) {
            res.destroy()
            reject(err)
          }
        },
      )
      r.on('error', (err: Error & { code?: string }) => {
        if (signal?.aborted) reject(signal.reason)
        else if (err.code && MISMATCH_CODES.has(err.code)) {
          reject(
            new SharedLLMError(
              'CERTIFICATE_MISMATCH',
              `${url.host} presented a certificate that the pinned CA ${tlsFingerprint(o.caFingerprint)} did not issue (${err.code}); if the peer was reinstalled, approve it again`,
              { cause: err, details: { host: url.host, reason: err.code } },
            ),
          )
        } else reject(new TypeError('fetch failed', { cause: err }))
      })
      r.end(body)
    })
  }) as typeof fetch
}

function tlsFingerprint(fp: string): string {
  return normalizeFingerprint(fp) ?? fp
}

function toResponse(res: IncomingMessage, url: URL, method: string): Response {
  const headers = new Headers()
  for (const [k, v] of Object.entries(res.headers)) {
    if (Array.isArray(v)) for (const item of v) headers.append(k, item)
    else if (v !== undefined) headers.set(k, v)
  }
  const status = res.statusCode ?? 0
  const noBody = method === 'HEAD' || status === 204 || status === 205 || status === 304
  if (noBody) res.resume()
  const response = new Response(noBody ? null : (Readable.toWeb(res) as ReadableStream<Uint8Array>), {
    status,
    statusText: res.statusMessage,
    headers,
  })
  Object.defineProperty(response, 'url', { value: url.href })
  return response
}

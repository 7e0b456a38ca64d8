import type { X509Certificate } from 'node:crypto'
import { type IncomingMessage, request as httpRequest } from 'node:http'
import { request as httpsRequest } from 'node:https'
import { checkServerIdentity as defaultCheckServerIdentity, type PeerCertificate } from 'node:tls'
import { SharedLLMError } from '../errors'
import { normalizeFingerprint, parseCertificate } from './fingerprint'

const MAX_CA_BYTES = 64 * 1024

export interface PeerCa {
  /** The CA certificate, re-encoded as one PEM block. */
  pem: string
  /** Colon-separated uppercase hex SHA-256 of its DER. */
  fingerprint: string
}

export interface FetchPeerCaOptions {
  /** A fingerprint learned out of band (mDNS TXT, shown by the owner): anything else is refused. */
  expectedFingerprint?: string
  /** @default 5000 */
  timeoutMs?: number
  signal?: AbortSignal
}

/**
 * Downloads a peer's CA certificate (its `/ca.crt`, over http or https) for trust on first use. Over https
 * the server is not verified, which is the point: nothing is trusted yet. The answer must be a self-signed
 * CA certificate; the caller pins its fingerprint once the owner has confirmed the peer.
 */
export async function fetchPeerCa(url: string, o: FetchPeerCaOptions = {}): Promise<PeerCa> {
  let target: URL
  try {
    target = new URL(url)
  } catch {
    throw new SharedLLMError('VALIDATION', `'${url}' is not a URL`, { details: { field: 'url' } })
  }
  if (target.protocol !== 'http:' && target.protocol !== 'https:') {
    throw new SharedLLMError('VALIDATION', `'${url}' must be an http or https URL`, {
      details: { field: 'url' },
    })
  }
  const expected = o.expectedFingerprint === undefined ? undefined : requireFingerprint(o.expectedFingerprint)
  const timeoutMs = o.timeoutMs ?? 5000
  const signal = AbortSignal.any([AbortSignal.timeout(timeoutMs), ...(o.signal ? [o.signal] : [])])
  const body = await new Promise<Buffer>((resolve, reject) => {
    const onResponse = (res: IncomingMessage) => {
      if (res.statusCode !== 200) {
        res.resume()
        reject(new SharedLLMError('UPSTREAM_ERROR', `${target.href} answered ${res.statusCode}`))
        return
      }
      const chunks: Buffer[] = []
      let size = 0
      res.on('data', (c: Buffer) => {
        size += c.length
        if (size > MAX_CA_BYTES) {
          res.destroy()
          reject(new SharedLLMError('UPSTREAM_ERROR', `${target.href} sent more than ${MAX_CA_BYTES} bytes`))
        } else chunks.push(c)
      })
      res.on('end', () => resolve(Buffer.concat(chunks)))
      res.on('error', reject)
    }
    const req =
      target.protocol === 'https:'
        ? httpsRequest(target, { signal, rejectUnauthorized: false, agent: false }, onResponse)
        : httpRequest(target, { signal, agent: false }, onResponse)
    req.on('error', (err) => reject(transportError(err, target, signal, timeoutMs)))
    req.end()
  })
  const cert = readCaCertificate(body, target.href)
  const fingerprint = cert.fingerprint256
  if (expected !== undefined && fingerprint !== expected) {
    throw new SharedLLMError(
      'CERTIFICATE_MISMATCH',
      `${target.host} offers CA ${fingerprint}, not the expected ${expected}; do not trust it`,
      { details: { expected, actual: fingerprint } },
    )
  }
  return { pem: cert.toString(), fingerprint }
}

function readCaCertificate(body: Buffer, from: string): X509Certificate {
  const text = body.toString('latin1')
  const m = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(text)
  let cert: X509Certificate
  try {
    cert = parseCertificate(m ? m[0] : body, `the CA from ${from}`)
  } catch (err) {
    throw new SharedLLMError('UPSTREAM_ERROR', (err as Error).message, { cause: err })
  }
  if (!cert.ca || !cert.checkIssued(cert) || !cert.verify(cert.publicKey)) {
    throw new SharedLLMError('UPSTREAM_ERROR', `${from} did not send a self-signed CA certificate`)
  }
  return cert
}

function requireFingerprint(input: string): string {
  const fp = typeof input === 'string' ? normalizeFingerprint(input) : null
  if (fp === null) {
    throw new SharedLLMError(
      'VALIDATION',
      'a CA fingerprint must be 64 hex digits (SHA-256), colons optional',
      {
        details: { field: 'fingerprint' },
      },
    )
  }
  return fp
}

export interface PinnedTlsOptions {
  ca: string
  checkServerIdentity: (hostname: string, cert: PeerCertificate) => Error | undefined
}

/**
 * TLS options (for `tls.connect`, `https.request`, an undici `connect`) that trust only the pinned CA:
 * `caPem` must have `expectedFingerprint` (else CERTIFICATE_MISMATCH right away, before any connection),
 * the server's chain must end at it, and the usual host name check still applies.
 */
export function tlsOptionsForPinnedCa(caPem: string, expectedFingerprint: string): PinnedTlsOptions {
  const want = requireFingerprint(expectedFingerprint)
  const ca = parseCertificate(caPem, 'the pinned CA')
  if (ca.fingerprint256 !== want) {
    throw new SharedLLMError(
      'CERTIFICATE_MISMATCH',
      `the stored CA certificate is ${ca.fingerprint256}, not the pinned ${want}`,
      { details: { expected: want, actual: ca.fingerprint256 } },
    )
  }
  return {
    ca: ca.toString(),
    checkServerIdentity(hostname, cert) {
      const err = defaultCheckServerIdentity(hostname, cert)
      if (err) return err
      // OpenSSL already verified the chain against `ca` alone; checking its root again guards against a
      // caller that merges these options with other CAs.
      let root = cert as PeerCertificate & { issuerCertificate?: PeerCertificate }
      for (let i = 0; i < 10 && root.issuerCertificate && root.issuerCertificate !== root; i++) {
        root = root.issuerCertificate
      }
      if (root.fingerprint256 !== want) {
        return Object.assign(
          new Error(
            `${hostname}'s certificate chain ends at ${root.fingerprint256}, not the pinned CA ${want}`,
          ),
          { code: PIN_ERROR },
        )
      }
      return undefined
    },
  }
}

/** The error code of a handshake refused by the pin check. */
export const PIN_ERROR = 'ERR_SHAREDLLM_CA_PIN'

function transportError(err: Error, url: URL, signal: AbortSignal, timeoutMs: number): unknown {
  if (signal.aborted) {
    const reason = signal.reason as { name?: string } | undefined
    if (reason?.name === 'TimeoutError') {
      return new SharedLLMError('TIMEOUT', `${url.host} did not answer within ${timeoutMs} ms`, {
        cause: err,
      })
    }
    return new SharedLLMError('CANCELLED', `the request to ${url.host} was cancelled`, { cause: err })
  }
  return new SharedLLMError(
    'UPSTREAM_UNAVAILABLE',
    `cannot reach ${url.host}: ${(err as { code?: string }).code ?? err.message}`,
    {
      cause: err,
    },
  )
}

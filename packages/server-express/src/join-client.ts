import { type ClaimResponse, type JoinResponse, SharedLLMError } from '@sharedllm/core'

export interface JoinHostOptions {
  url: string
  name: string
  platform?: string
  pairingCode?: string
  /** @default 3000 */
  intervalMs?: number
  onStatus?: (message: string) => void
  signal?: AbortSignal
}

async function call<T>(
  url: string,
  init: RequestInit,
): Promise<{ status: number; body: T; retryAfter: number }> {
  const res = await fetch(url, init)
  const text = await res.text()
  let body: unknown
  try {
    body = JSON.parse(text)
  } catch {
    throw new SharedLLMError(
      'UPSTREAM_ERROR',
      `${url} answered ${res.status} with something that is not JSON`,
    )
  }
  return { status: res.status, body: body as T, retryAfter: Number(res.headers.get('retry-after')) || 0 }
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    const t = setTimeout(resolve, ms)
    signal?.addEventListener('abort', () => {
      clearTimeout(t)
      reject(new SharedLLMError('CANCELLED', 'join cancelled'))
    })
  })

/** Files a join request with a host, polls until the owner decides, and returns the device key. */
export async function joinHost(o: JoinHostOptions): Promise<string> {
  let base: URL
  try {
    base = new URL(o.url)
    if (base.protocol !== 'http:' && base.protocol !== 'https:') throw new Error('not http')
  } catch {
    throw new SharedLLMError('VALIDATION', `'${o.url}' is not an http(s) URL of a sharedLLM host`)
  }
  const root = base.origin
  const joined = await call<JoinResponse & { error?: string }>(`${root}/api/join`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      name: o.name,
      ...(o.platform ? { platform: o.platform } : {}),
      ...(o.pairingCode ? { pairing_code: o.pairingCode } : {}),
    }),
    ...(o.signal ? { signal: o.signal } : {}),
  })
  if (joined.status !== 201) {
    throw new SharedLLMError(
      'UPSTREAM_ERROR',
      `the host refused the join request: ${joined.body.error ?? joined.status}`,
    )
  }
  const { request_id, claim_secret } = joined.body
  o.onStatus?.(`Join request sent to ${root}; waiting for the owner to approve "${o.name}"…`)
  const interval = o.intervalMs ?? 3000
  for (;;) {
    const polled = await call<ClaimResponse & { error?: string }>(`${root}/api/join/${request_id}`, {
      headers: { 'x-claim-secret': claim_secret },
      ...(o.signal ? { signal: o.signal } : {}),
    })
    if (polled.status === 429) {
      await sleep(Math.max(interval, polled.retryAfter * 1000), o.signal)
      continue
    }
    if (polled.status !== 200) {
      throw new SharedLLMError(
        'UPSTREAM_ERROR',
        `the host answered ${polled.status}: ${polled.body.error ?? ''}`,
      )
    }
    const { status, device_key } = polled.body
    if (status === 'approved' && device_key) return device_key
    if (status === 'denied' || status === 'revoked') {
      throw new SharedLLMError('FORBIDDEN', `the host ${status} this device`)
    }
    await sleep(interval, o.signal)
  }
}

import type { PeerBreakerState, PeerStatus, PoolHost, PoolResponse } from '@sharedllm/core/protocol'

const MiB = 1024 * 1024

/** What the routing setting does, in the owner's words (README, Pooling). */
export const ROUTING_WORDS: Record<PoolResponse['routing'], string> = {
  off: 'Off: requests never leave this host.',
  local_first:
    'Local first: a request goes to another host when this one does not have the model, cannot load it now, or would make it wait longer by more than routing_wait_threshold_s.',
  balanced:
    'Balanced: each request goes to the best host of the pool, this one included (model loaded there, fits its memory, shorter queue, latency).',
}

/** The circuit breaker of a peer in a few words; `tone` is the tag's colour. */
export function breakerLine(
  b: PeerBreakerState,
  now = Date.now(),
): { text: string; tone: 'success' | 'warning' | 'error' } {
  if (b.state === 'closed') {
    return b.failures > 0
      ? { text: `${b.failures} failed in a row`, tone: 'warning' }
      : { text: 'Answering', tone: 'success' }
  }
  if (b.state === 'half_open') return { text: 'Paused; the next request is a trial', tone: 'warning' }
  const s = b.open_until === null ? null : Math.max(1, Math.ceil((b.open_until - now) / 1000))
  return { text: s === null ? 'Paused after failures' : `Paused for ${s} s after failures`, tone: 'error' }
}

/** Memory of a host as a bar: what is used and what is free (a peer reports no allocations). */
export function hostMemory(h: Pick<PoolHost, 'free_mb' | 'total_mb'>) {
  if (h.total_mb === null || h.total_mb <= 0) return null
  const total = h.total_mb * MiB
  const free = Math.min(total, Math.max(0, (h.free_mb ?? 0) * MiB))
  return { total, used: total - free, allocated: 0, reserve: 0, free }
}

/** A host found on the LAN that is not in the pool, in words. */
export const PEER_STATUS_WORDS: Record<PeerStatus, string> = {
  discovered: 'Found on the network; not joined',
  joining: 'Joining…',
  pending: 'Waiting for its owner to approve this host',
  joined: 'Joined; waiting for its first status',
  denied: 'Its owner refused this host',
  failed: 'Joining failed',
}

/** Whether the owner can press Join for a host in this state. */
export const canJoin = (s: PeerStatus) => s === 'discovered' || s === 'failed' || s === 'denied'

/** What is wrong with a peer now, for the dashboard: why its polls fail, else why routed requests failed. */
export function currentFailure(h: Pick<PoolHost, 'up' | 'breaker' | 'last_error'>): string | null {
  if (!h.up) return h.last_error ?? 'not answering its status'
  const b = h.breaker
  if (b && (b.state !== 'closed' || b.failures > 0)) return b.last_failure
  return null
}

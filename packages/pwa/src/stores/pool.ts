import type { Peer, PoolHost, PoolResponse } from '@sharedllm/core/protocol'
import { defineStore } from 'pinia'
import { computed, ref } from 'vue'
import { api } from '../api/client'

/**
 * The pool as the owner sees it: `GET /api/pool` (every host with its memory, breaker and models) and
 * `GET /api/peers` (the other hosts found on the LAN, joined or not). A `peer_updated` event (a peer up or
 * down, a breaker opening) reloads both once the pool page or the dashboard has read them.
 */
export const usePoolStore = defineStore('pool', () => {
  const pool = ref<PoolResponse | null>(null)
  const peers = ref<Peer[]>([])
  const error = ref<string | null>(null)
  let loaded = false
  let reload: ReturnType<typeof setTimeout> | null = null

  async function load() {
    loaded = true
    try {
      const [p, list] = await Promise.all([
        api.pool(),
        // No discovery on this host (started with --no-mdns and no peers): no list, still a pool.
        api.peers().catch(() => ({ peers: [] as Peer[] })),
      ])
      pool.value = p
      peers.value = list.peers
      error.value = null
    } catch (err) {
      error.value = (err as Error).message
    }
  }

  /** A peer changed: take its new state now and read the pool again shortly (one read for a burst). */
  function peerChanged(peer: Peer) {
    const i = peers.value.findIndex((p) => p.id === peer.id)
    peers.value = i < 0 ? [...peers.value, peer] : peers.value.map((p) => (p.id === peer.id ? peer : p))
    if (!loaded || reload) return
    reload = setTimeout(() => {
      reload = null
      load()
    }, 300)
  }

  async function join(id: string) {
    const { peer } = await api.joinPeer(id)
    peerChanged(peer)
    return peer
  }

  const hosts = computed<PoolHost[]>(() => pool.value?.hosts ?? [])
  const peerHosts = computed(() => hosts.value.filter((h) => !h.self))
  /** Hosts found on the LAN that are not (yet) in the pool: not joined, or joined and not polled yet. */
  const outside = computed(() => {
    const inPool = new Set(peerHosts.value.map((h) => h.id))
    return peers.value.filter((p) => !inPool.has(p.id))
  })
  /** Peers the owner should look at: down, or their circuit breaker not closed. */
  const troubled = computed(() =>
    peerHosts.value.filter((h) => !h.up || (h.breaker !== null && h.breaker.state !== 'closed')),
  )

  return { pool, peers, error, hosts, peerHosts, outside, troubled, load, peerChanged, join }
})

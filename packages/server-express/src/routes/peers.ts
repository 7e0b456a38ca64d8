import {
  type Hub,
  type PeerModelsResponse,
  type PeerResponse,
  type PeerStatusResponse,
  type PeersResponse,
  type PoolResponse,
  SharedLLMError,
} from '@sharedllm/core'
import { type AnyRoute, route } from './define'

function peersOf(hub: Hub) {
  if (!hub.peers) {
    // How this host was started, not an outage: a 4xx, never a 5xx.
    throw new SharedLLMError(
      'CONFLICT',
      'LAN discovery is off on this host (started with --no-mdns): no peers',
    )
  }
  return hub.peers
}

function poolOf(hub: Hub) {
  if (!hub.pool) throw new SharedLLMError('CONFLICT', 'pooling is off on this host')
  return hub.pool
}

export const peerRoutes: AnyRoute[] = [
  route({
    method: 'get',
    path: '/api/peers',
    access: 'admin',
    summary: 'Other sharedLLM hosts discovered on the LAN',
    handler: async ({ hub }): Promise<PeersResponse> => {
      const peers = hub.peers ? await hub.peers.list() : []
      // The pooling state (status polls, circuit breaker) of each joined peer.
      return { peers: hub.pool ? peers.map((p) => hub.pool!.annotate(p)) : peers }
    },
  }),
  route({
    method: 'get',
    path: '/api/peer/status',
    access: 'principal',
    summary:
      "This host's status for a paired sharedLLM host (its device key here): memory, installed and loaded models, queue",
    handler: ({ hub, principal }): Promise<PeerStatusResponse> => poolOf(hub).status(principal),
  }),
  route({
    method: 'get',
    path: '/api/pool',
    access: 'principal',
    summary: 'The pool: this host and its joined peers, their memory, and where each model lives',
    handler: ({ hub, principal }): Promise<PoolResponse> => poolOf(hub).poolView(principal!),
  }),
  route({
    method: 'post',
    path: '/api/peers/:id/join',
    access: 'admin',
    summary: 'File a join request to a discovered host; its key is claimed and kept once it approves',
    handler: async ({ hub, params }): Promise<PeerResponse> => ({
      peer: await peersOf(hub).join(params.id!),
    }),
  }),
  route({
    method: 'get',
    path: '/api/peers/:id/models',
    access: 'admin',
    summary: "A joined host's models, listed through its gateway",
    handler: async ({ hub, params }): Promise<PeerModelsResponse> => ({
      models: await peersOf(hub).models(params.id!),
    }),
  }),
]

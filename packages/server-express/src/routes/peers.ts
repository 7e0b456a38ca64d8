import {
  type Hub,
  type PeerModelsResponse,
  type PeerResponse,
  type PeersResponse,
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

export const peerRoutes: AnyRoute[] = [
  route({
    method: 'get',
    path: '/api/peers',
    access: 'admin',
    summary: 'Other sharedLLM hosts discovered on the LAN',
    handler: async ({ hub }): Promise<PeersResponse> => ({ peers: hub.peers ? await hub.peers.list() : [] }),
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

export { Breaker, type BreakerOptions } from './breaker'
export { PEER_STATUS_MAX_BYTES, peerStatusSchema } from './schema'
export { isPeerPrincipal, PoolService, type PoolServiceOptions, type RoutePlan } from './service'
export { PeerUpstream, type PeerUpstreamOptions } from './upstream'

export { getInstanceId } from '../store/instance'
export { toPeer } from '../store/peers'
export { Discovery, type DiscoveryOptions } from './discovery'
export {
  baseUrl,
  claimResponseSchema,
  type JoinBody,
  joinResponseSchema,
  PeerClient,
  type PeerClientOptions,
  tagsResponseSchema,
} from './peer-client'
export { PeersService, type PeersServiceOptions } from './peers'
export {
  type DnsPacket,
  type DnsRecord,
  instanceLabel,
  parseResponse,
  type RawAdvert,
  SERVICE_DOMAIN,
  SERVICE_TYPE,
  type Sighting,
  toSighting,
} from './records'
export { DiscoveryRegistry, type DiscoveryRegistryOptions, type SightingOutcome } from './registry'
export {
  hasBidiControls,
  isUnicastAddress,
  MAX_NAME_LENGTH,
  nameSkeleton,
  orderAddresses,
  parseTxt,
  sanitizeName,
} from './sanitize'

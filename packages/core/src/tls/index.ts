export {
  type AddressKind,
  addressKind,
  canonicalIp,
  desiredSans,
  isLoopbackIp,
  isServedAddress,
  lanAddresses,
  type SanSet,
  SERVED_RANGES,
  sourceKey,
} from './addresses'
export { CA_VALIDITY_DAYS } from './ca'
export { type EnsureHostCertificatesOptions, ensureHostCertificates, type HostCertificates } from './ensure'
export { certificateFingerprint, normalizeFingerprint, spkiSha256Base64 } from './fingerprint'
export { certificateSans, SERVER_VALIDITY_DAYS } from './leaf'
export { iosMobileConfig } from './mobileconfig'
export {
  type FetchPeerCaOptions,
  fetchPeerCa,
  type PeerCa,
  type PinnedTlsOptions,
  tlsOptionsForPinnedCa,
} from './pin'
export { type PinnedFetchOptions, pinnedFetch } from './pinned-fetch'

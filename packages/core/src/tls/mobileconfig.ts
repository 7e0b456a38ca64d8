import { createHash } from 'node:crypto'
import { SharedLLMError } from '../errors'
import { parseCertificate } from './fingerprint'

const IDENTIFIER = /^[A-Za-z0-9][A-Za-z0-9.-]{0,199}$/

function xmlEscape(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;')
}

/** A UUID derived from the CA and a label, so reinstalling the same CA's profile replaces it, not duplicates it. */
function stableUuid(seed: string, label: string): string {
  const h = createHash('sha256').update(`${label}\0${seed}`).digest('hex').toUpperCase()
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`
}

/**
 * An Apple configuration profile (plist XML, `application/x-apple-aspen-config`) that installs `caCertPem`
 * as a root certificate on iOS/iPadOS/macOS. After installing it, iOS still needs the owner to turn on full
 * trust in Settings › General › About › Certificate Trust Settings.
 */
export function iosMobileConfig(caCertPem: string, o: { name: string; identifier: string }): string {
  const cert = parseCertificate(caCertPem, 'the CA certificate')
  if (!cert.ca)
    throw new SharedLLMError('VALIDATION', 'the certificate for the profile is not a CA certificate')
  const name = typeof o.name === 'string' ? o.name.replace(/[\p{Cc}]/gu, '').trim() : ''
  if (name.length === 0 || name.length > 200) {
    throw new SharedLLMError('VALIDATION', 'profile name must be 1 to 200 characters', {
      details: { field: 'name' },
    })
  }
  if (typeof o.identifier !== 'string' || !IDENTIFIER.test(o.identifier)) {
    throw new SharedLLMError(
      'VALIDATION',
      'profile identifier must be reverse-DNS (letters, digits, dots, dashes)',
      {
        details: { field: 'identifier' },
      },
    )
  }
  const der = cert.raw.toString('base64')
  const lines = der.match(/.{1,64}/g)!.join('\n\t\t\t')
  const seed = cert.fingerprint256
  const n = xmlEscape(name)
  const id = xmlEscape(o.identifier)
  return `<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
	<key>PayloadContent</key>
	<array>
		<dict>
			<key>PayloadCertificateFileName</key>
			<string>ca.crt</string>
			<key>PayloadContent</key>
			<data>
			${lines}
			</data>
			<key>PayloadDescription</key>
			<string>Adds the certificate authority of ${n}</string>
			<key>PayloadDisplayName</key>
			<string>${n} CA</string>
			<key>PayloadIdentifier</key>
			<string>${id}.ca</string>
			<key>PayloadType</key>
			<string>com.apple.security.root</string>
			<key>PayloadUUID</key>
			<string>${stableUuid(seed, 'ca')}</string>
			<key>PayloadVersion</key>
			<integer>1</integer>
		</dict>
	</array>
	<key>PayloadDescription</key>
	<string>Lets this device open ${n} over HTTPS. Fingerprint (SHA-256): ${seed}</string>
	<key>PayloadDisplayName</key>
	<string>${n}</string>
	<key>PayloadIdentifier</key>
	<string>${id}</string>
	<key>PayloadRemovalDisallowed</key>
	<false/>
	<key>PayloadType</key>
	<string>Configuration</string>
	<key>PayloadUUID</key>
	<string>${stableUuid(seed, 'profile')}</string>
	<key>PayloadVersion</key>
	<integer>1</integer>
</dict>
</plist>
`
}

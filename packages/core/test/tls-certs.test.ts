import { execFile, execFileSync } from 'node:child_process'
import { createHash, X509Certificate } from 'node:crypto'
import {
  cpSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import https from 'node:https'
import tls from 'node:tls'
import forge from 'node-forge'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import {
  certificateFingerprint,
  ensureHostCertificates,
  type HostCertificates,
  iosMobileConfig,
  isServedAddress,
  isSharedLLMError,
  lanAddresses,
  SERVER_VALIDITY_DAYS,
  silentLogger,
} from '../src/index'
import { tempDir } from './helpers'

const DAY = 24 * 60 * 60 * 1000
const HOST = 'gpu-box'
const LAN = ['192.168.1.20', 'fd00::20']

// RSA key generation costs ~0.5 s on a busy 2-core machine: two hosts are made once and copied per test.
let baseDir: string
let base: HostCertificates
let otherDir: string
let other: HostCertificates

beforeAll(async () => {
  baseDir = mkdtempSync(join(tmpdir(), 'sllm-tls-base-'))
  otherDir = mkdtempSync(join(tmpdir(), 'sllm-tls-other-'))
  ;[base, other] = await Promise.all([
    ensureHostCertificates({ dataDir: baseDir, hostname: HOST, addresses: LAN }),
    ensureHostCertificates({ dataDir: otherDir, hostname: HOST, addresses: LAN }),
  ])
}, 30_000)

afterAll(() => {
  for (const d of [baseDir, otherDir]) rmSync(d, { recursive: true, force: true })
})

function copyOf(dir: string): string {
  const copy = tempDir('sllm-tls-copy-')
  cpSync(join(dir, 'tls'), join(copy, 'tls'), { recursive: true, preserveTimestamps: true })
  return copy
}

const ensure = (dataDir: string, extra: Partial<Parameters<typeof ensureHostCertificates>[0]> = {}) =>
  ensureHostCertificates({ dataDir, hostname: HOST, addresses: LAN, ...extra })

function mode(path: string): number {
  return statSync(path).mode & 0o777
}

/** Every file of the tls dir with its bytes and mtime, to prove a failed call wrote nothing. */
function snapshot(dataDir: string): string {
  const dir = join(dataDir, 'tls')
  return JSON.stringify(
    readdirSync(dir)
      .sort()
      .map((f) => [f, readFileSync(join(dir, f), 'base64'), statSync(join(dir, f)).mtimeMs]),
  )
}

async function withTlsServer<T>(c: { certPem: string; keyPem: string }, fn: (port: number) => Promise<T>) {
  const server = tls.createServer({ key: c.keyPem, cert: c.certPem }, (s) => s.end())
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  try {
    return await fn((server.address() as AddressInfo).port)
  } finally {
    await new Promise((r) => server.close(r))
  }
}

function handshake(port: number, o: tls.ConnectionOptions) {
  return new Promise<{ authorized: boolean; error: string | null; peer: tls.DetailedPeerCertificate }>(
    (resolve, reject) => {
      const s = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, ...o }, () => {
        const result = {
          authorized: s.authorized,
          error: s.authorizationError ? String(s.authorizationError) : null,
          peer: s.getPeerCertificate(true),
        }
        s.destroy()
        resolve(result)
      })
      s.on('error', reject)
    },
  )
}

describe('first start', () => {
  test('creates the CA and a server certificate with owner-only keys', async () => {
    const dir = tempDir()
    const c = await ensure(dir)
    expect(c.reissued).toBe(true)
    expect(c.caCreated).toBe(true)
    const tlsDir = join(dir, 'tls')
    expect(mode(tlsDir)).toBe(0o700)
    expect(mode(join(tlsDir, 'ca.key'))).toBe(0o600)
    expect(mode(join(tlsDir, 'server.key'))).toBe(0o600)
    expect(mode(join(tlsDir, 'ca.crt'))).toBe(0o644)
    expect(mode(join(tlsDir, 'server.crt'))).toBe(0o644)
    expect(readdirSync(tlsDir).sort()).toEqual(['ca.crt', 'ca.key', 'server.crt', 'server.key'])
    expect(c.caKeyPath).toBe(join(tlsDir, 'ca.key'))
    expect(readFileSync(join(tlsDir, 'ca.crt'), 'utf8')).toBe(c.caCertPem)
    expect(readFileSync(join(tlsDir, 'server.key'), 'utf8')).toBe(c.keyPem)
  })

  test('the CA is a 2-year RSA-2048 CA limited to signing end certificates', () => {
    const ca = new X509Certificate(base.caCertPem)
    expect(ca.ca).toBe(true)
    expect(ca.publicKey.asymmetricKeyType).toBe('rsa')
    expect(ca.publicKey.asymmetricKeyDetails?.modulusLength).toBe(2048)
    expect(ca.checkIssued(ca) && ca.verify(ca.publicKey)).toBe(true)
    const days = (new Date(ca.validTo).getTime() - new Date(ca.validFrom).getTime()) / DAY
    expect(days).toBeGreaterThan(729)
    expect(days).toBeLessThanOrEqual(731)
    const f = forge.pki.certificateFromPem(base.caCertPem)
    expect(f.siginfo.algorithmOid).toBe(forge.pki.oids.sha256WithRSAEncryption)
    expect(f.getExtension('basicConstraints')).toMatchObject({
      cA: true,
      pathLenConstraint: 0,
      critical: true,
    })
    expect(f.getExtension('keyUsage')).toMatchObject({ keyCertSign: true, cRLSign: true, critical: true })
  })

  test('the server certificate is a browser-acceptable leaf for every name and address', () => {
    const leaf = new X509Certificate(base.certPem)
    expect(leaf.ca).toBe(false)
    expect(leaf.keyUsage).toEqual(['1.3.6.1.5.5.7.3.1']) // serverAuth
    const days = (new Date(leaf.validTo).getTime() - new Date(leaf.validFrom).getTime()) / DAY
    expect(days).toBeLessThanOrEqual(SERVER_VALIDITY_DAYS)
    expect(days).toBeLessThanOrEqual(398)
    expect(base.notAfter.getTime()).toBe(new Date(leaf.validTo).getTime())
    expect(base.sans.dns.sort()).toEqual(['gpu-box', 'gpu-box.local', 'localhost'])
    expect(base.sans.ip.sort()).toEqual(['127.0.0.1', '192.168.1.20', '::1', 'fd00::20'])
    const f = forge.pki.certificateFromPem(base.certPem)
    const aki = f.getExtension('authorityKeyIdentifier') as { value: string }
    const caSki = forge.pki.certificateFromPem(base.caCertPem).generateSubjectKeyIdentifier().getBytes()
    // AKI is SEQUENCE { [0] keyIdentifier }: the CA's key id follows a 4-byte header.
    expect(aki.value.slice(4)).toBe(caSki)
  })

  test('by default it covers every LAN address of this machine in the ranges the CA serves', async () => {
    const c = await ensureHostCertificates({ dataDir: copyOf(baseDir), hostname: HOST })
    for (const a of lanAddresses()) {
      if (isServedAddress(a)) expect(c.sans.ip).toContain(a)
      else expect(c.sans.ip).not.toContain(a)
    }
  })
})

describe('the chain verifies with Node tls against the CA', () => {
  test('by name and by IP, and not against another CA', async () => {
    await withTlsServer(base, async (port) => {
      for (const servername of ['localhost', 'gpu-box', 'gpu-box.local']) {
        const byName = await handshake(port, { ca: base.caCertPem, servername })
        expect(byName).toMatchObject({ authorized: true, error: null })
        expect(tls.checkServerIdentity(servername, byName.peer)).toBeUndefined()
      }
      const byIp = await handshake(port, { ca: base.caCertPem })
      expect(byIp.authorized).toBe(true)
      for (const ip of ['127.0.0.1', '192.168.1.20', 'fd00::20', '::1']) {
        expect(tls.checkServerIdentity(ip, byIp.peer)).toBeUndefined()
      }
      expect(tls.checkServerIdentity('192.168.1.99', byIp.peer)).toBeInstanceOf(Error)
      expect(tls.checkServerIdentity('elsewhere.local', byIp.peer)).toBeInstanceOf(Error)
      expect((await handshake(port, { ca: other.caCertPem, servername: 'localhost' })).authorized).toBe(false)
      expect((await handshake(port, { servername: 'localhost' })).authorized).toBe(false)
    })
  })

  test('a strict client (rejectUnauthorized) connects with only the CA', async () => {
    await withTlsServer(base, async (port) => {
      const r = await handshake(port, {
        ca: base.caCertPem,
        servername: 'localhost',
        rejectUnauthorized: true,
      })
      expect(r.peer.fingerprint256).toBe(new X509Certificate(base.certPem).fingerprint256)
      expect(r.peer.issuerCertificate.fingerprint256).toBe(base.caFingerprintSha256)
    })
  })
})

describe('later starts', () => {
  test('keep a good certificate as it is', async () => {
    const dir = copyOf(baseDir)
    const before = snapshot(dir)
    const c = await ensure(dir)
    expect(c.reissued).toBe(false)
    expect(c.caCreated).toBe(false)
    expect(c.certPem).toBe(base.certPem)
    expect(snapshot(dir)).toBe(before)
  })

  test('an expired certificate is replaced and the CA stays', async () => {
    const dir = tempDir()
    const longAgo = new Date(Date.now() - 400 * DAY)
    const old = await ensure(dir, { now: () => longAgo })
    expect(old.notAfter.getTime()).toBeLessThan(Date.now())
    const c = await ensure(dir)
    expect(c.reissued).toBe(true)
    expect(c.caFingerprintSha256).toBe(old.caFingerprintSha256)
    expect(c.notAfter.getTime()).toBeGreaterThan(Date.now() + 390 * DAY)
    expect(new X509Certificate(c.certPem).verify(new X509Certificate(old.caCertPem).publicKey)).toBe(true)
    expect((await ensure(dir)).reissued).toBe(false)
  })

  test('a certificate expiring within renewBeforeDays is renewed; one further out is kept', async () => {
    const dir = copyOf(baseDir)
    const in300Days = () => new Date(Date.now() + 300 * DAY)
    expect((await ensure(dir, { now: in300Days })).reissued).toBe(false)
    const in380Days = () => new Date(Date.now() + 380 * DAY)
    const renewed = await ensure(dir, { now: in380Days })
    expect(renewed.reissued).toBe(true)
    expect(renewed.caFingerprintSha256).toBe(base.caFingerprintSha256)
    expect((await ensure(dir, { now: in380Days, renewBeforeDays: 10 })).reissued).toBe(false)
  })

  test('a new address is covered by a new certificate from the same CA', async () => {
    const dir = copyOf(baseDir)
    const c = await ensure(dir, { addresses: [...LAN, '10.0.0.7'] })
    expect(c.reissued).toBe(true)
    expect(c.sans.ip).toContain('10.0.0.7')
    expect(c.sans.ip).toContain('192.168.1.20')
    expect(c.caFingerprintSha256).toBe(base.caFingerprintSha256)
    expect(c.leafSpkiSha256Base64).not.toBe(base.leafSpkiSha256Base64)
    // An address that went away does not force a new certificate.
    expect((await ensure(dir, { addresses: ['10.0.0.7'] })).reissued).toBe(false)
    expect((await ensure(dir, { hostname: 'renamed', addresses: ['10.0.0.7'] })).sans.dns).toContain(
      'renamed.local',
    )
  })

  test('a certificate signed by another CA is replaced', async () => {
    const dir = copyOf(baseDir)
    cpSync(join(otherDir, 'tls', 'server.crt'), join(dir, 'tls', 'server.crt'))
    cpSync(join(otherDir, 'tls', 'server.key'), join(dir, 'tls', 'server.key'))
    const c = await ensure(dir)
    expect(c.reissued).toBe(true)
    expect(c.caFingerprintSha256).toBe(base.caFingerprintSha256)
    await withTlsServer(c, async (port) => {
      expect((await handshake(port, { ca: base.caCertPem, servername: 'localhost' })).authorized).toBe(true)
    })
  })

  test('an unreadable certificate or a key that does not match it is replaced', async () => {
    const garbled = copyOf(baseDir)
    writeFileSync(join(garbled, 'tls', 'server.crt'), 'not a certificate')
    expect((await ensure(garbled)).reissued).toBe(true)
    const mismatched = copyOf(baseDir)
    cpSync(join(otherDir, 'tls', 'server.key'), join(mismatched, 'tls', 'server.key'))
    const c = await ensure(mismatched)
    expect(c.reissued).toBe(true)
    expect(mode(join(mismatched, 'tls', 'server.key'))).toBe(0o600)
  })
})

describe('the CA is never silently replaced', () => {
  test('a corrupt ca.key is an error naming it, and nothing is written', async () => {
    const dir = copyOf(baseDir)
    writeFileSync(
      join(dir, 'tls', 'ca.key'),
      '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n',
    )
    writeFileSync(join(dir, 'tls', 'server.crt'), 'stale')
    const before = snapshot(dir)
    const err = await ensure(dir).catch((e: unknown) => e)
    expect(isSharedLLMError(err, 'STORE_CORRUPT')).toBe(true)
    expect((err as Error).message).toContain(join(dir, 'tls', 'ca.key'))
    expect((err as { details: unknown }).details).toEqual({ file: join(dir, 'tls', 'ca.key') })
    expect(snapshot(dir)).toBe(before)
  })

  test('a ca.key of another CA is an error, and nothing is written', async () => {
    const dir = copyOf(baseDir)
    cpSync(join(otherDir, 'tls', 'ca.key'), join(dir, 'tls', 'ca.key'))
    const before = snapshot(dir)
    await expect(ensure(dir)).rejects.toThrow(/ca\.key is not the key of .*ca\.crt/)
    expect(snapshot(dir)).toBe(before)
  })

  test('one half of the CA missing is an error naming the missing file', async () => {
    const noKey = copyOf(baseDir)
    unlinkSync(join(noKey, 'tls', 'ca.key'))
    await expect(ensure(noKey)).rejects.toThrow(`${join(noKey, 'tls', 'ca.key')} is missing`)
    const noCert = copyOf(baseDir)
    unlinkSync(join(noCert, 'tls', 'ca.crt'))
    await expect(ensure(noCert)).rejects.toThrow(`${join(noCert, 'tls', 'ca.crt')} is missing`)
    expect(existsSync(join(noCert, 'tls', 'ca.crt'))).toBe(false)
  })

  test('a creation interrupted after the key was written is completed from the pending certificate', async () => {
    const dir = copyOf(baseDir)
    renameSync(join(dir, 'tls', 'ca.crt'), join(dir, 'tls', 'ca.crt.pending'))
    const c = await ensure(dir)
    expect(c.caFingerprintSha256).toBe(base.caFingerprintSha256)
    expect(c.reissued).toBe(false)
    expect(readdirSync(join(dir, 'tls')).sort()).toEqual(['ca.crt', 'ca.key', 'server.crt', 'server.key'])
  })
})

describe('the CA is constrained to this host and rotated with a warning', () => {
  const openssl = (args: string[], input?: string) =>
    new Promise<{ code: number; out: string }>((resolve) => {
      const child = execFile('openssl', args, (err, stdout, stderr) =>
        resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, out: stdout + stderr }),
      )
      if (input !== undefined) child.stdin?.end(input)
    })

  test('a critical nameConstraints extension permits only the host names and the private ranges', async () => {
    const text = (await openssl(['x509', '-noout', '-text', '-in', join(baseDir, 'tls', 'ca.crt')])).out
    const block = text.slice(
      text.indexOf('X509v3 Name Constraints: critical'),
      text.indexOf('Signature Algorithm:', text.indexOf('Name Constraints')),
    )
    expect(block).toContain('X509v3 Name Constraints: critical')
    const permitted = block
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l.startsWith('DNS:') || l.startsWith('IP:'))
    expect(permitted).toEqual([
      'DNS:localhost',
      'DNS:gpu-box',
      'DNS:gpu-box.local',
      'IP:127.0.0.0/255.0.0.0',
      'IP:10.0.0.0/255.0.0.0',
      'IP:172.16.0.0/255.240.0.0',
      'IP:192.168.0.0/255.255.0.0',
      'IP:100.64.0.0/255.192.0.0',
      'IP:0:0:0:0:0:0:0:1/FFFF:FFFF:FFFF:FFFF:FFFF:FFFF:FFFF:FFFF',
      'IP:FC00:0:0:0:0:0:0:0/FE00:0:0:0:0:0:0:0',
    ])
    expect(block).not.toContain('Excluded')
    const leaf = join(baseDir, 'tls', 'server.crt')
    expect(await openssl(['verify', '-CAfile', join(baseDir, 'tls', 'ca.crt'), leaf])).toEqual({
      code: 0,
      out: `${leaf}: OK\n`,
    })
  })

  test('a certificate the CA key signs for any other name or a public address is refused', async () => {
    const caKey = forge.pki.privateKeyFromPem(readFileSync(join(baseDir, 'tls', 'ca.key'), 'utf8'))
    const caCert = forge.pki.certificateFromPem(base.caCertPem)
    const leafKey = forge.pki.privateKeyFromPem(base.keyPem)
    const rogue = (altNames: Array<{ type: number; value?: string; ip?: string }>) => {
      const c = forge.pki.createCertificate()
      c.publicKey = forge.pki.rsa.setPublicKey(leafKey.n, leafKey.e)
      c.serialNumber = '0badc0de'
      c.validity.notBefore = new Date(Date.now() - DAY)
      c.validity.notAfter = new Date(Date.now() + 30 * DAY)
      c.setSubject([{ name: 'commonName', value: 'rogue' }])
      c.setIssuer(caCert.subject.attributes)
      c.setExtensions([
        { name: 'basicConstraints', cA: false, critical: true },
        { name: 'extKeyUsage', serverAuth: true },
        { name: 'subjectAltName', altNames },
      ])
      c.sign(caKey, forge.md.sha256.create())
      return forge.pki.certificateToPem(c)
    }
    const dir = tempDir()
    for (const [name, alt] of [
      ['bank', [{ type: 2, value: 'www.bank.example' }]],
      ['public-ip', [{ type: 7, ip: '8.8.8.8' }]],
      [
        'ours-and-more',
        [
          { type: 2, value: 'localhost' },
          { type: 2, value: 'mail.google.com' },
        ],
      ],
    ] as const) {
      const file = join(dir, `${name}.crt`)
      writeFileSync(file, rogue([...alt]))
      const r = await openssl(['verify', '-CAfile', join(baseDir, 'tls', 'ca.crt'), file])
      expect(r.code, name).not.toBe(0)
      expect(r.out, name).toMatch(/permitted subtree violation|name constraints/i)
    }
    // Node's TLS client (OpenSSL) refuses it too.
    const pem = rogue([{ type: 2, value: 'www.bank.example' }])
    await withTlsServer({ certPem: pem, keyPem: base.keyPem }, async (port) => {
      const r = await handshake(port, { ca: base.caCertPem, servername: 'www.bank.example' })
      // The genuine leaf on the same key passes (the test above); the rogue one fails verification.
      expect(r).toMatchObject({ authorized: false, error: expect.any(String) })
    })
  })

  test('a public address of the host is left out of its certificate', async () => {
    const c = await ensure(tempDir(), { addresses: ['192.168.1.20', '203.0.113.5', '2001:db8::7'] })
    expect(c.sans.ip.sort()).toEqual(['127.0.0.1', '192.168.1.20', '::1'])
  })

  test('an expiring CA is replaced with a warning; the old key is gone, the old certificate retired', async () => {
    const dir = copyOf(baseDir)
    const warnings: string[] = []
    const log = { ...silentLogger, warn: (_o: unknown, m?: string) => warnings.push(m ?? '') }
    const c = await ensure(dir, {
      now: () => new Date(Date.now() + 710 * DAY),
      log: { ...log, child: () => log } as typeof silentLogger,
    })
    expect(c.caRotated).toMatch(/^it expires on /)
    expect(c.caFingerprintSha256).not.toBe(base.caFingerprintSha256)
    expect(c.reissued).toBe(true)
    expect(new X509Certificate(c.certPem).checkIssued(new X509Certificate(c.caCertPem))).toBe(true)
    expect(warnings.some((w) => /must install the new CA from \/ca\.crt/.test(w))).toBe(true)
    const files = readdirSync(join(dir, 'tls')).sort()
    expect(files.filter((f) => f.startsWith('ca-retired-') && f.endsWith('.crt'))).toHaveLength(1)
    expect(files.filter((f) => f.endsWith('.key')).sort()).toEqual(['ca.key', 'server.key'])
    expect(readFileSync(join(dir, 'tls', 'ca.key'), 'utf8')).not.toBe(
      readFileSync(join(baseDir, 'tls', 'ca.key'), 'utf8'),
    )
  })

  test('a CA of an older version (10 years, unconstrained) or one for another host name is rotated', async () => {
    const dir = copyOf(baseDir)
    const key = forge.pki.privateKeyFromPem(readFileSync(join(dir, 'tls', 'ca.key'), 'utf8'))
    const old = forge.pki.createCertificate()
    old.publicKey = forge.pki.rsa.setPublicKey(key.n, key.e)
    old.serialNumber = '01'
    old.validity.notBefore = new Date(Date.now() - DAY)
    old.validity.notAfter = new Date(Date.now() + 3650 * DAY)
    const subject = [{ name: 'commonName', value: 'sharedLLM CA gpu-box 2026-11-27' }]
    old.setSubject(subject)
    old.setIssuer(subject)
    old.setExtensions([
      { name: 'basicConstraints', cA: true, pathLenConstraint: 0, critical: true },
      { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
      { name: 'subjectKeyIdentifier' },
    ])
    old.sign(key, forge.md.sha256.create())
    writeFileSync(join(dir, 'tls', 'ca.crt'), forge.pki.certificateToPem(old))
    const rotated = await ensure(dir)
    expect(rotated.caRotated).toMatch(/valid for more than two years|no name constraints/)
    expect(await ensure(dir)).toMatchObject({ caRotated: null, reissued: false })
    const renamed = await ensure(dir, { hostname: 'new-box' })
    expect(renamed.caRotated).toMatch(/do not cover new-box/)
    expect(renamed.sans.dns.sort()).toEqual(['localhost', 'new-box', 'new-box.local'])
  })
})

describe('inputs', () => {
  test('a bad hostname or address is a VALIDATION error and creates nothing', async () => {
    const dir = tempDir()
    await expect(ensure(dir, { hostname: 'bad host' })).rejects.toMatchObject({ code: 'VALIDATION' })
    await expect(ensure(dir, { addresses: ['192.168.1.300'] })).rejects.toThrow(/192\.168\.1\.300/)
    await expect(ensure(dir, { renewBeforeDays: -1 })).rejects.toMatchObject({ code: 'VALIDATION' })
    expect(existsSync(join(dir, 'tls'))).toBe(false)
  })

  test('lanAddresses keeps non-internal v4/v6 and drops loopback and link-local v6', () => {
    const nic = (address: string, family: 'IPv4' | 'IPv6', internal = false) =>
      ({ address, family, internal, netmask: '', mac: '', cidr: null, scopeid: 0 }) as never
    expect(
      lanAddresses({
        lo: [nic('127.0.0.1', 'IPv4', true), nic('::1', 'IPv6', true)],
        eth0: [
          nic('192.168.1.20', 'IPv4'),
          nic('fe80::1c2:3ff:fe4', 'IPv6'),
          nic('FD00:0:0:0:0:0:0:20', 'IPv6'),
        ],
        wlan0: [nic('10.0.0.7', 'IPv4'), nic('192.168.1.20', 'IPv4')],
      }),
    ).toEqual(['192.168.1.20', 'fd00::20', '10.0.0.7'])
  })
})

describe('fingerprints', () => {
  test('the CA fingerprint is colon-separated uppercase SHA-256 of the DER, as openssl shows it', () => {
    expect(base.caFingerprintSha256).toMatch(/^([0-9A-F]{2}:){31}[0-9A-F]{2}$/)
    const der = new X509Certificate(base.caCertPem).raw
    const hex = createHash('sha256').update(der).digest('hex').toUpperCase()
    expect(base.caFingerprintSha256.replaceAll(':', '')).toBe(hex)
    expect(certificateFingerprint(base.caCertPem)).toBe(base.caFingerprintSha256)
    expect(() => certificateFingerprint('nope')).toThrow(/not a readable X.509 certificate/)
  })

  test('the SPKI hashes are those of the certificates public keys', () => {
    const spki = (pem: string) =>
      createHash('sha256')
        .update(new X509Certificate(pem).publicKey.export({ type: 'spki', format: 'der' }))
        .digest('base64')
    expect(base.caSpkiSha256Base64).toBe(spki(base.caCertPem))
    expect(base.leafSpkiSha256Base64).toBe(spki(base.certPem))
    expect(base.caSpkiSha256Base64).toMatch(/^[A-Za-z0-9+/]{43}=$/)
    expect(base.caSpkiSha256Base64).not.toBe(base.leafSpkiSha256Base64)
  })
})

describe('iOS configuration profile', () => {
  // Python's plistlib is an independent, strict reader of Apple's plist XML.
  function readPlist(xml: string): Record<string, unknown> {
    const script = [
      'import plistlib, sys, json, base64',
      'p = plistlib.loads(sys.stdin.buffer.read())',
      'enc = lambda o: base64.b64encode(o).decode() if isinstance(o, bytes) else str(o)',
      'print(json.dumps(p, default=enc))',
    ].join('\n')
    return JSON.parse(execFileSync('python3', ['-c', script], { input: xml, encoding: 'utf8' }))
  }

  test('is well-formed plist XML carrying the CA as DER, with stable UUIDs', () => {
    const xml = iosMobileConfig(base.caCertPem, {
      name: 'Home <GPU> & co',
      identifier: 'local.sharedllm.gpu-box',
    })
    expect(xml.startsWith('<?xml version="1.0" encoding="UTF-8"?>')).toBe(true)
    const plist = readPlist(xml) as {
      PayloadType: string
      PayloadIdentifier: string
      PayloadDisplayName: string
      PayloadUUID: string
      PayloadVersion: number
      PayloadContent: Array<Record<string, unknown>>
    }
    expect(plist).toMatchObject({
      PayloadType: 'Configuration',
      PayloadIdentifier: 'local.sharedllm.gpu-box',
      PayloadDisplayName: 'Home <GPU> & co',
      PayloadVersion: 1,
    })
    expect(plist.PayloadContent).toHaveLength(1)
    const payload = plist.PayloadContent[0]!
    expect(payload.PayloadType).toBe('com.apple.security.root')
    expect(payload.PayloadContent).toBe(new X509Certificate(base.caCertPem).raw.toString('base64'))
    const uuid = /^[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}$/
    expect(plist.PayloadUUID).toMatch(uuid)
    expect(payload.PayloadUUID).toMatch(uuid)
    expect(payload.PayloadUUID).not.toBe(plist.PayloadUUID)
    expect(iosMobileConfig(base.caCertPem, { name: 'x', identifier: 'a.b' })).toContain(plist.PayloadUUID)
    expect(iosMobileConfig(other.caCertPem, { name: 'x', identifier: 'a.b' })).not.toContain(
      plist.PayloadUUID,
    )
  })

  test('refuses a non-CA certificate and bad names', () => {
    expect(() => iosMobileConfig(base.certPem, { name: 'x', identifier: 'a.b' })).toThrow(/not a CA/)
    expect(() => iosMobileConfig('junk', { name: 'x', identifier: 'a.b' })).toThrow(/not a readable/)
    expect(() => iosMobileConfig(base.caCertPem, { name: ' ', identifier: 'a.b' })).toThrow(/name/)
    expect(() => iosMobileConfig(base.caCertPem, { name: 'x', identifier: 'a b</string>' })).toThrow(
      /identifier/,
    )
  })
})

describe('real clients trust the host through its CA', () => {
  function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env) {
    return new Promise<{ code: number; out: string }>((resolve) => {
      execFile(cmd, args, { env, timeout: 20_000 }, (err, stdout, stderr) =>
        resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, out: stdout + stderr }),
      )
    })
  }

  async function withHttpsServer(fn: (port: number) => Promise<void>) {
    const server = https.createServer({ key: base.keyPem, cert: base.certChainPem }, (_req, res) => {
      res.end('hello over tls')
    })
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    try {
      await fn((server.address() as AddressInfo).port)
    } finally {
      server.closeAllConnections()
      await new Promise((r) => server.close(r))
    }
  }

  test('curl --cacert ca.crt, and not without it', async () => {
    const caFile = join(baseDir, 'tls', 'ca.crt')
    await withHttpsServer(async (port) => {
      for (const url of [`https://localhost:${port}/`, `https://127.0.0.1:${port}/`]) {
        expect(await run('curl', ['-sS', '--noproxy', '*', '--cacert', caFile, url])).toEqual({
          code: 0,
          out: 'hello over tls',
        })
      }
      // 60: peer certificate cannot be authenticated with known CA certificates.
      expect((await run('curl', ['-sS', '--noproxy', '*', `https://localhost:${port}/`])).code).toBe(60)
    })
  })

  test('Node clients with NODE_EXTRA_CA_CERTS, and not without it', async () => {
    const script = `fetch(process.argv[1]).then(async (r) => console.log(await r.text()), (e) => { console.log(e.cause?.code ?? e.message); process.exit(3) })`
    await withHttpsServer(async (port) => {
      const url = `https://localhost:${port}/`
      const env = { ...process.env, NODE_EXTRA_CA_CERTS: join(baseDir, 'tls', 'ca.crt') }
      expect(await run(process.execPath, ['-e', script, url], env)).toEqual({
        code: 0,
        out: 'hello over tls\n',
      })
      const without = { ...process.env, NODE_EXTRA_CA_CERTS: '' }
      const refused = await run(process.execPath, ['-e', script, url], without)
      expect(refused.code).toBe(3)
      expect(refused.out).toMatch(/UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED_CERT_IN_CHAIN/)
    })
  })
})

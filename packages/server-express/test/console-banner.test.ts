import type { OllamaStatus } from '@sharedllm/core'
import { describe, expect, it } from 'vitest'
import { bannerLines, ollamaLine, ownerBaseUrl } from '../src/console-banner'

const base = {
  version: '1.2.3',
  host: '0.0.0.0',
  port: 8080,
  urls: ['http://localhost:8080', 'http://192.168.1.20:8080'],
  https: { port: 8443, urls: ['https://localhost:8443', 'https://192.168.1.20:8443'] },
  caFingerprint: 'AA:BB',
  loginToken: 'tok_123',
}

describe('console banner', () => {
  it('gives the owner a localhost link and phones the LAN addresses, separately', () => {
    const text = bannerLines(base).join('\n')
    expect(text).toContain('listening on port 8080')
    expect(text).toContain('admin login link')
    expect(text).toContain('over HTTPS on port 8443')
    expect(text).toContain('http://localhost:8080/login?token=tok_123')
    expect(text).not.toContain('192.168.1.20:8080/login')
    const phones = text.slice(text.indexOf('Phones and laptops'))
    expect(phones).toContain('http://192.168.1.20:8080')
    expect(phones).toContain('https://192.168.1.20:8443')
    expect(phones).not.toContain('localhost')
  })

  it('uses the bound address when the server does not listen on loopback', () => {
    expect(ownerBaseUrl('192.168.1.20', 9000)).toBe('http://192.168.1.20:9000')
    expect(ownerBaseUrl('127.0.0.1', 9000)).toBe('http://localhost:9000')
    expect(ownerBaseUrl('::', 9000)).toBe('http://localhost:9000')
  })

  it('says when no phone can reach a loopback-only host', () => {
    const text = bannerLines({
      ...base,
      host: '127.0.0.1',
      urls: ['http://127.0.0.1:8080'],
      https: undefined,
    }).join('\n')
    expect(text).toContain('none can reach it')
    expect(text).toContain('http://localhost:8080/login?token=tok_123')
  })

  it('prints a first secret once and says what to do when Ollama is missing', () => {
    expect(bannerLines({ ...base, newSecret: 's3cret' }).join('\n')).toContain('s3cret')
    const down: OllamaStatus = {
      state: 'stopped',
      running: false,
      host: 'http://127.0.0.1:11434',
      version: null,
      owned: false,
      pid: null,
      restarts: 0,
      gave_up: false,
      last_error: 'ollama binary not found',
      checked_at: 1,
    } as OllamaStatus
    expect(ollamaLine(down, true)).toMatch(/not running: ollama binary not found\. To fix: install it/)
    expect(ollamaLine({ ...down, last_error: null }, true)).toMatch(
      /nothing answers at http:\/\/127\.0\.0\.1:11434/,
    )
    expect(ollamaLine(down, false)).toMatch(/turn on auto_start_ollama/)
    expect(ollamaLine({ ...down, state: 'running', running: true, version: '0.33.0' }, true)).toBe(
      '  Ollama 0.33.0 is running at http://127.0.0.1:11434',
    )
    expect(ollamaLine({ ...down, state: 'starting' }, true)).toBeNull()
  })
})

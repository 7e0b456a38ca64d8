import { Writable } from 'node:stream'
import pino from 'pino'
import { expect, it } from 'vitest'
import { REDACT_CENSOR, REDACT_PATHS } from '../src/index'

function capture(): { log: pino.Logger; lines: () => Record<string, unknown>[] } {
  const chunks: string[] = []
  const out = new Writable({
    write(chunk, _enc, cb) {
      chunks.push(String(chunk))
      cb()
    },
  })
  const log = pino({ base: undefined, redact: { paths: [...REDACT_PATHS], censor: REDACT_CENSOR } }, out)
  return {
    log,
    lines: () =>
      chunks
        .join('')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l)),
  }
}

it('the one redact list hides keys, secrets, claim secrets, authorization and cookie headers, not setting names', () => {
  const { log, lines } = capture()
  log.warn({ key: 'default_role', value: 'x' }, 'ignoring invalid stored setting')
  log.info({
    token: 't',
    secret: 's',
    device_key: 'sllm_abc',
    claim_secret: 'c',
    authorization: 'Bearer sllm_abc',
    cookie: 'sllm_session=x',
    req: { headers: { authorization: 'Bearer sllm_abc', cookie: 'sllm_session=x', host: 'h' } },
    join: { claim_secret: 'c2', device_key: 'sllm_def', name: 'phone' },
  })
  const [setting, secrets] = lines()
  expect(setting).toMatchObject({ key: 'default_role', value: 'x' })
  expect(secrets).toMatchObject({
    token: REDACT_CENSOR,
    secret: REDACT_CENSOR,
    device_key: REDACT_CENSOR,
    claim_secret: REDACT_CENSOR,
    authorization: REDACT_CENSOR,
    cookie: REDACT_CENSOR,
    req: { headers: { authorization: REDACT_CENSOR, cookie: REDACT_CENSOR, host: 'h' } },
    join: { claim_secret: REDACT_CENSOR, device_key: REDACT_CENSOR, name: 'phone' },
  })
  expect(JSON.stringify(secrets)).not.toMatch(/sllm_abc|sllm_def|sllm_session/)
})

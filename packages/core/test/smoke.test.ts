import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createHub } from '@sharedllm/core'
import { expect, test } from 'vitest'

test('a hub starts on a fresh data dir with the built-in roles', async () => {
  const hub = createHub({ dataDir: mkdtempSync(join(tmpdir(), 'sllm-')) })
  await hub.start()
  expect((await hub.roles.list()).map((r) => r.id)).toEqual(['role-admin', 'role-user', 'role-guest'])
  await hub.stop()
})

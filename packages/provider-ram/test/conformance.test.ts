import { createFakeHost, runProviderConformance } from '@sharedllm/core/testing'
import { test } from 'vitest'
import { createRamProvider } from '../src/index'
import { fixture } from './helpers'

runProviderConformance(test, {
  provider: () => createRamProvider(),
  availableHost: () =>
    createFakeHost({ files: { '/proc/meminfo': fixture('linux-x86_64-16gb-telegraf.txt') } }),
  unavailableHosts: {
    'a Windows host that reports no memory': () =>
      createFakeHost({ platform: 'win32', totalMemBytes: 0, freeMemBytes: 0 }),
  },
  // Reads a file, runs no command.
  capabilities: { kinds: ['system'], deviceCount: 1, execOnSnapshot: false },
})

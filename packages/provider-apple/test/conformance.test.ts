import { createFakeHost, runProviderConformance } from '@sharedllm/core/testing'
import { test } from 'vitest'
import { createAppleProvider } from '../src/index'
import { fixture } from './helpers'

// An M1 Pro's `sysctl hw machdep` with an M1's vm_stat (two real captures; no source has both).
const appleSilicon = () =>
  createFakeHost({
    platform: 'darwin',
    arch: 'arm64',
    commands: {
      sysctl: fixture('sysctl-hw-machdep-m1pro-16gb-monterey.txt'),
      vm_stat: fixture('vm_stat-m1-16k-pages.txt'),
    },
  })

runProviderConformance(test, {
  provider: () => createAppleProvider(),
  availableHost: appleSilicon,
  unavailableHosts: {
    'an Intel Mac (darwin/x64)': () =>
      createFakeHost({
        platform: 'darwin',
        arch: 'x64',
        commands: {
          sysctl: fixture('sysctl-machdep-intel-i7-6700k-mojave-subset.txt'),
          vm_stat: fixture('vm_stat-intel-4k-pages.txt'),
        },
      }),
    'Linux on arm64': () => createFakeHost({ platform: 'linux', arch: 'arm64' }),
    'a Mac whose sysctl prints no hw.memsize': () =>
      createFakeHost({
        platform: 'darwin',
        arch: 'arm64',
        commands: { sysctl: fixture('sysctl-hw-machdep-m1-bigsur-subset.txt') },
      }),
  },
  capabilities: { kinds: ['unified'], deviceCount: 1, supersedes: ['ram'] },
})

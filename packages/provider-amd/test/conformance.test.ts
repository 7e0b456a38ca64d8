import { createFakeHost, runProviderConformance } from '@sharedllm/core/testing'
import { test } from 'vitest'
import { createAmdProvider } from '../src/index'
import { fixture, sysfs } from './helpers'

runProviderConformance(test, {
  label: 'amd (rocm-smi)',
  provider: () => createAmdProvider(),
  availableHost: () => createFakeHost({ commands: { 'rocm-smi': fixture('mi100x4-rocm602-all.json') } }),
  unavailableHosts: {
    'a host with an NVIDIA-only /sys/class/drm': () =>
      createFakeHost({ files: { '/sys/class/drm/card0/device/vendor': '0x10de\n' } }),
    macOS: () => createFakeHost({ platform: 'darwin', arch: 'arm64' }),
  },
  capabilities: { kinds: ['dedicated'], deviceCount: 4 },
})

runProviderConformance(test, {
  label: 'amd (sysfs)',
  provider: () => createAmdProvider(),
  availableHost: () => createFakeHost({ files: sysfs('amd-vega10-card0-procfs-fixture.json') }),
  // No command runs when rocm-smi is absent: only sysfs reads.
  capabilities: { kinds: ['dedicated'], deviceCount: 1, execOnSnapshot: false },
})

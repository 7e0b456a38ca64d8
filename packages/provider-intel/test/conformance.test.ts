import { createFakeHost, runProviderConformance } from '@sharedllm/core/testing'
import { test } from 'vitest'
import { createIntelProvider } from '../src/index'
import { alderLakeIgpu, arcB580OnXe } from './trees'

runProviderConformance(test, {
  provider: () => createIntelProvider(),
  availableHost: () => createFakeHost({ files: { ...alderLakeIgpu, ...arcB580OnXe } }),
  unavailableHosts: {
    'an AMD-only host': () => createFakeHost({ files: { '/sys/class/drm/card0/device/vendor': '0x1002\n' } }),
    'an Intel card on another driver (vfio-pci)': () =>
      createFakeHost({
        files: {
          '/sys/class/drm/card0/device/vendor': '0x8086\n',
          '/sys/class/drm/card0/device/uevent': 'DRIVER=vfio-pci\n',
        },
      }),
    macOS: () => createFakeHost({ platform: 'darwin', arch: 'x64' }),
  },
  capabilities: { kinds: ['dedicated', 'unified'], deviceCount: 2, execOnSnapshot: false },
})

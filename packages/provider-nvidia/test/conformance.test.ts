import { createFakeHost, runProviderConformance } from '@sharedllm/core/testing'
import { test } from 'vitest'
import { createNvidiaProvider } from '../src/index'
import { fixture } from './helpers'

runProviderConformance(test, {
  provider: () => createNvidiaProvider(),
  // Tesla P100 query output (header + nounits): the provider maps its columns by header name.
  availableHost: () =>
    createFakeHost({ commands: { 'nvidia-smi': fixture('tesla-p100-query-gpu-csv-units-na-netdata.txt') } }),
  unavailableHosts: {
    // nvidia-smi installed but the driver is not loaded: it exits 9 (NVML_ERROR_DRIVER_NOT_LOADED).
    'a host whose nvidia-smi cannot reach a driver': () =>
      createFakeHost({ commands: { 'nvidia-smi': { exitCode: 9 } } }),
  },
  capabilities: { kinds: ['dedicated', 'unified'], deviceCount: 1 },
})

import type { Device } from '@sharedllm/core/protocol'
import { defineStore } from 'pinia'
import { ref } from 'vue'

/** Devices waiting for the admin's decision in the approval toast, oldest first. */
export const useApprovalsStore = defineStore('approvals', () => {
  const queue = ref<Device[]>([])

  function announce(device: Device) {
    if (device.status !== 'pending') return
    if (queue.value.some((d) => d.id === device.id)) return
    queue.value = [...queue.value, device]
  }
  function settle(id: string) {
    queue.value = queue.value.filter((d) => d.id !== id)
  }
  return { queue, announce, settle }
})

import type { Device, DeviceStatus } from '@sharedllm/core/protocol'
import { defineStore } from 'pinia'
import { computed, ref } from 'vue'
import { api } from '../api/client'

export const useDevicesStore = defineStore('devices', () => {
  const byId = ref<Record<string, Device>>({})

  const list = computed(() => Object.values(byId.value).sort((a, b) => b.created_at - a.created_at))
  const withStatus = (status: DeviceStatus) => list.value.filter((d) => d.status === status)
  const pending = computed(() => withStatus('pending'))

  function replaceAll(devices: Device[]) {
    byId.value = Object.fromEntries(devices.map((d) => [d.id, d]))
  }
  function upsert(device: Device) {
    const known = byId.value[device.id]
    // Events can arrive out of order with a REST answer: keep the newer record.
    if (known && known.updated_at > device.updated_at) return
    byId.value = { ...byId.value, [device.id]: device }
  }
  function drop(id: string) {
    const { [id]: _gone, ...rest } = byId.value
    byId.value = rest
  }

  async function load() {
    replaceAll((await api.devices()).devices)
  }
  async function approve(id: string, roleId: string) {
    upsert((await api.approve(id, roleId)).device)
  }
  async function deny(id: string) {
    upsert((await api.deny(id)).device)
  }
  async function revoke(id: string) {
    upsert((await api.revoke(id)).device)
  }
  async function remove(id: string) {
    await api.remove(id)
    drop(id)
  }
  async function setAllocation(id: string, mb: number) {
    upsert((await api.setAllocation(id, mb)).device)
  }
  async function setRole(id: string, roleId: string) {
    upsert((await api.setRole(id, roleId)).device)
  }

  return {
    byId,
    list,
    pending,
    withStatus,
    replaceAll,
    upsert,
    drop,
    load,
    approve,
    deny,
    revoke,
    remove,
    setAllocation,
    setRole,
  }
})

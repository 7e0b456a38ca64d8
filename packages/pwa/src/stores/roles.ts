import type { Role } from '@sharedllm/core/protocol'
import { defineStore } from 'pinia'
import { computed, ref } from 'vue'
import { api, type RoleFields } from '../api/client'

export const useRolesStore = defineStore('roles', () => {
  const roles = ref<Role[]>([])
  const byId = computed(() => Object.fromEntries(roles.value.map((r) => [r.id, r])) as Record<string, Role>)

  function replaceAll(next: Role[]) {
    roles.value = [...next].sort((a, b) => b.trust_level - a.trust_level || a.name.localeCompare(b.name))
  }
  function upsert(role: Role) {
    replaceAll([...roles.value.filter((r) => r.id !== role.id), role])
  }
  function drop(id: string) {
    roles.value = roles.value.filter((r) => r.id !== id)
  }
  async function load() {
    replaceAll((await api.roles()).roles)
  }
  async function create(fields: RoleFields) {
    const { role } = await api.createRole(fields)
    upsert(role)
    return role
  }
  async function update(id: string, fields: Partial<RoleFields>) {
    const { role } = await api.updateRole(id, fields)
    upsert(role)
    return role
  }
  async function remove(id: string) {
    await api.deleteRole(id)
    drop(id)
  }
  return { roles, byId, replaceAll, upsert, drop, load, create, update, remove }
})

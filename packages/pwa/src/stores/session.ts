import type { Device, DeviceStatus, JoinRequest, Role, SessionResponse } from '@sharedllm/core/protocol'
import { defineStore } from 'pinia'
import { computed, ref } from 'vue'
import { api } from '../api/client'
import { ApiRequestError, deviceKeyStorage } from '../api/http'

export type SessionKind = 'unknown' | 'anonymous' | 'admin' | 'device'

/** What a phone keeps while it waits for approval: enough to claim its key later, even after a reload. */
export interface PendingJoin {
  request_id: string
  claim_secret: string
  device_id: string
  name: string
}

const JOIN_KEY = 'sharedllm.join'

const joinStorage = {
  get(): PendingJoin | null {
    try {
      const raw = globalThis.localStorage?.getItem(JOIN_KEY)
      return raw ? (JSON.parse(raw) as PendingJoin) : null
    } catch {
      return null
    }
  },
  set: (join: PendingJoin) => globalThis.localStorage?.setItem(JOIN_KEY, JSON.stringify(join)),
  clear: () => globalThis.localStorage?.removeItem(JOIN_KEY),
}

export const useSessionStore = defineStore('session', () => {
  const kind = ref<SessionKind>('unknown')
  const device = ref<Device | null>(null)
  const role = ref<Role | null>(null)
  const deviceKey = ref<string | null>(deviceKeyStorage.get())
  const pendingJoin = ref<PendingJoin | null>(joinStorage.get())
  const joinStatus = ref<DeviceStatus | null>(null)
  /** The key just claimed, shown once on "My access" and then forgotten by the page (not by storage). */
  const freshKey = ref<string | null>(null)
  const notice = ref<string | null>(null)

  const isAdmin = computed(() => kind.value === 'admin')

  function apply(res: SessionResponse) {
    if (res.kind === 'admin') {
      kind.value = 'admin'
      device.value = null
      role.value = null
    } else {
      kind.value = 'device'
      device.value = res.device
      role.value = res.role
    }
  }

  async function resolve(): Promise<SessionKind> {
    try {
      apply(await api.session())
    } catch (err) {
      if (!(err instanceof ApiRequestError) || (err.status !== 401 && err.status !== 403)) throw err
      if (deviceKey.value) {
        // The stored key no longer works (revoked or removed): forget it and ask again as nobody.
        forgetKey()
        notice.value =
          'This device’s key no longer works: the owner revoked it, removed the device, or issued a new key. If they gave you a new key, use it under Request access › “I already have a key”; else request access again.'
        return resolve()
      }
      kind.value = 'anonymous'
    }
    return kind.value
  }

  async function login(secret: string) {
    const res = await api.login(secret.trim())
    if (res && 'kind' in res) apply(res)
    else await resolve()
    if (kind.value !== 'admin')
      throw new ApiRequestError(401, 'UNAUTHORIZED', 'That secret did not log you in')
  }
  async function logout() {
    await api.logout().catch(() => {})
    kind.value = 'anonymous'
  }

  async function requestAccess(body: JoinRequest) {
    const res = await api.join(body)
    const join: PendingJoin = {
      request_id: res.request_id,
      claim_secret: res.claim_secret,
      device_id: res.device_id,
      name: body.name,
    }
    joinStorage.set(join)
    pendingJoin.value = join
    joinStatus.value = res.status
    notice.value = null
  }

  /** One claim poll. Returns true once the key is stored and the session is a device. */
  async function pollClaim(): Promise<boolean> {
    const join = pendingJoin.value
    if (!join) return false
    try {
      const res = await api.claim(join.request_id, join.claim_secret)
      joinStatus.value = res.status
      if (res.device_key) {
        deviceKeyStorage.set(res.device_key)
        deviceKey.value = res.device_key
        freshKey.value = res.device_key
        cancelJoin()
        await resolve()
        return kind.value === 'device' || kind.value === 'admin'
      }
    } catch (err) {
      if (err instanceof ApiRequestError && (err.status === 410 || err.status === 404)) {
        cancelJoin()
        notice.value =
          err.status === 410
            ? 'The key for this request was already collected by another tab or device. Request access again.'
            : 'The host no longer knows this request. Request access again.'
      } else throw err
    }
    return false
  }

  /** The owner revoked, denied or removed this device (told on its socket): forget the key, say why. */
  function endDevice(status: 'revoked' | 'denied' | 'removed') {
    if (kind.value !== 'device') return
    forgetKey()
    kind.value = 'anonymous'
    notice.value =
      status === 'removed'
        ? 'The owner removed this device from the host. You can request access again.'
        : status === 'denied'
          ? 'The owner denied this device’s access. Ask them, then request access again.'
          : 'The owner revoked this device’s access. Ask them, then request access again.'
  }

  /** Switches this device to another key (a rotated one), after checking that the host accepts it. */
  async function useKey(key: string) {
    const trimmed = key.trim()
    const res = await api.session(trimmed)
    if (res.kind !== 'device') throw new ApiRequestError(400, 'VALIDATION', 'That is not a device key')
    deviceKeyStorage.set(trimmed)
    deviceKey.value = trimmed
    apply(res)
  }

  function cancelJoin() {
    joinStorage.clear()
    pendingJoin.value = null
  }
  function forgetKey() {
    deviceKeyStorage.clear()
    deviceKey.value = null
    device.value = null
    role.value = null
  }

  return {
    kind,
    device,
    role,
    deviceKey,
    pendingJoin,
    joinStatus,
    freshKey,
    notice,
    isAdmin,
    resolve,
    login,
    logout,
    requestAccess,
    pollClaim,
    cancelJoin,
    forgetKey,
    endDevice,
    useKey,
  }
})

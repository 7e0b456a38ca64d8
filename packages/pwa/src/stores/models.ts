import type { ModelView, PullProgress, RunningModel } from '@sharedllm/core/protocol'
import { defineStore } from 'pinia'
import { computed, ref } from 'vue'
import { api } from '../api/client'
import { ApiRequestError } from '../api/http'

export interface PullState extends PullProgress {
  /** Set when the pull ended badly; the row stays until dismissed. */
  error?: string
  /** True for a pull this tab started and follows through its own stream. */
  own: boolean
  /** Ended by a cancel (from any tab): not a failure. */
  cancelled?: boolean
}

/** core/src/ollama/models.ts names a cancelled pull so ("The pull of X was cancelled"). */
const CANCELLED = /was cancelled$/

export const useModelsStore = defineStore('models', () => {
  const models = ref<ModelView[]>([])
  const running = ref<RunningModel[]>([])
  const pulls = ref<Record<string, PullState>>({})
  const controllers = new Map<string, AbortController>()
  /** Pulls this tab cancelled: their failure event is the cancel itself and shows nothing. */
  const cancelledHere = new Set<string>()

  const pullList = computed(() => Object.values(pulls.value))
  const runningByName = computed(() => Object.fromEntries(running.value.map((m) => [m.name, m])))

  async function load() {
    const [m, r] = await Promise.all([api.models(), api.runningModels()])
    models.value = m.models
    running.value = r.models
  }
  function setRunning(next: RunningModel[]) {
    running.value = next
  }
  function setPulls(next: PullProgress[]) {
    const own = Object.fromEntries(Object.entries(pulls.value).filter(([, p]) => p.own || p.error))
    pulls.value = {
      ...Object.fromEntries(next.map((p) => [p.name, { ...p, own: controllers.has(p.name) }])),
      ...own,
    }
  }
  function progress(p: PullProgress) {
    pulls.value = { ...pulls.value, [p.name]: { ...pulls.value[p.name], ...p, own: controllers.has(p.name) } }
  }
  function finished(name: string, error?: string) {
    controllers.delete(name)
    if (error && (cancelledHere.has(name) || (CANCELLED.test(error) && !pulls.value[name]))) {
      cancelledHere.delete(name)
      return dismiss(name)
    }
    if (error && CANCELLED.test(error)) {
      pulls.value = {
        ...pulls.value,
        [name]: { ...(pulls.value[name] ?? blank(name)), status: 'cancelled', cancelled: true, own: false },
      }
      return
    }
    if (error)
      pulls.value = { ...pulls.value, [name]: { ...(pulls.value[name] ?? blank(name)), error, own: false } }
    else dismiss(name)
  }
  function dismiss(name: string) {
    const { [name]: _gone, ...rest } = pulls.value
    pulls.value = rest
  }

  /** Starts a pull and follows its stream; events from the socket update the same row. */
  async function pull(name: string) {
    if (controllers.has(name)) return
    const ctrl = new AbortController()
    controllers.set(name, ctrl)
    pulls.value = { ...pulls.value, [name]: { ...blank(name), own: true } }
    try {
      for await (const line of api.pull(name, ctrl.signal)) {
        if ('error' in line) return finished(name, line.error)
        if (line.status === 'success') break
        if ('completed' in line) progress(line)
      }
      finished(name)
      await load().catch(() => {})
    } catch (err) {
      if (ctrl.signal.aborted) finished(name)
      else finished(name, err instanceof ApiRequestError ? err.message : String(err))
    }
  }
  /** Cancels a pull, whether this tab started it or another one did. */
  async function cancel(name: string) {
    const own = controllers.get(name)
    controllers.delete(name)
    cancelledHere.add(name)
    own?.abort()
    dismiss(name)
    try {
      await api.cancelPull(name)
    } catch (err) {
      // 404: the abort above already ended it, or it finished meanwhile.
      if (!(err instanceof ApiRequestError && err.status === 404)) throw err
    }
  }
  function removed(name: string) {
    models.value = models.value.filter((m) => m.name !== name)
  }
  async function remove(name: string, force = false) {
    await api.deleteModel(name, force)
    removed(name)
  }
  return {
    models,
    running,
    runningByName,
    pulls,
    pullList,
    load,
    setRunning,
    setPulls,
    progress,
    finished,
    dismiss,
    pull,
    cancel,
    removed,
    remove,
  }
})

const blank = (name: string): PullState => ({
  name,
  status: 'starting',
  completed: 0,
  total: 0,
  percent: null,
  own: false,
})

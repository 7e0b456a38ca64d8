// The fake's model store: the installed models start as the captured /api/tags list; pulls add, deletes
// remove, chat/generate load a model into /api/ps until its keep_alive runs out.
import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'

export const DEFAULT_KEEP_ALIVE_MS = 5 * 60_000

export function loadFixtures(dir) {
  const text = (name) => readFileSync(join(dir, name), 'utf8')
  return {
    version: text('api-version-local-0.10.1.json'),
    tags: JSON.parse(text('api-tags-16-models-local.json')).models,
    show: JSON.parse(text('api-show-dolphin3-8b-local-windows.json')),
    psSample: JSON.parse(text('api-ps-partial-offload-deepseek-r1-14b.json')).models[0],
    pullHead: lines(text('api-pull-stream-head-fragment.txt')),
    pullTail: lines(text('api-pull-stream-tail-fragment.txt')),
    pullError: lines(text('api-pull-stream-error-in-stream.txt')),
    errorMidStream: lines(text('docs-api-error-mid-stream.txt')),
    notFoundPage: text('api-unknown-path-404-plaintext.txt'),
  }
}

function lines(s) {
  return s
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l))
}

/** `llama3` and `llama3:latest` name the same model. */
export function normalizeName(name) {
  const last = name.slice(name.lastIndexOf('/') + 1)
  return last.includes(':') ? name : `${name}:latest`
}

/** Ollama's keep_alive: a number of seconds or a Go duration ("5m", "1h30m", "-1"); negative = forever. */
export function parseKeepAlive(value) {
  if (value === undefined || value === null) return DEFAULT_KEEP_ALIVE_MS
  if (typeof value === 'number') return value < 0 ? Number.POSITIVE_INFINITY : value * 1000
  const s = String(value).trim()
  if (/^-?\d+(\.\d+)?$/.test(s)) return parseKeepAlive(Number(s))
  const units = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }
  const re = /(-?\d+(?:\.\d+)?)(ms|s|m|h)/g
  let total = 0
  let matched = ''
  for (const m of s.matchAll(re)) {
    total += Number(m[1]) * units[m[2]]
    matched += m[0]
  }
  if (matched !== s) throw new Error(`time: invalid duration "${s}"`)
  return total < 0 ? Number.POSITIVE_INFINITY : total
}

export function createState(fixtures) {
  const models = new Map(fixtures.tags.map((m) => [m.name, structuredClone(m)]))
  const loaded = new Map()

  const find = (name) => models.get(name) ?? models.get(normalizeName(name))

  return {
    fixtures,
    find,
    list: () => [...models.values()],
    add(name, size) {
      const full = normalizeName(name)
      if (models.has(full)) return models.get(full)
      const model = {
        name: full,
        model: full,
        modified_at: new Date().toISOString(),
        size,
        digest: createHash('sha256').update(full).digest('hex'),
        details: {
          parent_model: '',
          format: 'gguf',
          family: 'llama',
          families: ['llama'],
          parameter_size: '8.0B',
          quantization_level: 'Q4_K_M',
        },
      }
      models.set(full, model)
      return model
    },
    remove(name) {
      const model = find(name)
      if (!model) return false
      models.delete(model.name)
      loaded.delete(model.name)
      return true
    },
    /** Loads (or refreshes) a model; keep_alive 0 unloads it. */
    touch(model, keepAlive, contextLength) {
      const ms = parseKeepAlive(keepAlive)
      if (ms === 0) {
        loaded.delete(model.name)
        return
      }
      loaded.set(model.name, { model, expiresAt: Date.now() + ms, contextLength: contextLength ?? 4096 })
    },
    running() {
      const now = Date.now()
      const out = []
      for (const [name, entry] of loaded) {
        if (entry.expiresAt <= now) {
          loaded.delete(name)
          continue
        }
        const { model } = entry
        out.push({
          name: model.name,
          model: model.model,
          size: model.size,
          digest: model.digest,
          details: model.details,
          expires_at: Number.isFinite(entry.expiresAt)
            ? new Date(entry.expiresAt).toISOString()
            : '2318-08-13T12:00:00.000Z',
          size_vram: model.size,
          context_length: entry.contextLength,
        })
      }
      return out
    },
  }
}

import type { BodyShape } from '../request-body'

/** Which Ollama API a route belongs to: decides the error shape and the usage endpoint label. */
export type GatewayApi = 'ollama' | 'openai'

/**
 * What the gateway does with a route:
 * - `infer`: a model runs (chat, generate, embeddings, completions); admitted with the fit check.
 * - `show`: model metadata; admitted without the fit check, the role's model list still applies.
 * - `pull`: needs `can_pull` and a validated name.
 * - `tags`, `models`, `ps`: lists, filtered to what the device may use.
 * - `version`: passed through.
 */
export type RouteKind = 'infer' | 'show' | 'pull' | 'tags' | 'models' | 'ps' | 'version'

export interface GatewayRoute {
  api: GatewayApi
  method: 'GET' | 'POST'
  /** The Ollama path this route forwards to: a constant, never built from the client's URL. */
  upstream: string
  /** Usage and metrics label, e.g. `ollama:/api/chat`. */
  endpoint: string
  kind: RouteKind
  /** The request struct Ollama decodes the body into (POST routes); the outgoing body is built from it. */
  body?: BodyShape
}

function r(
  api: GatewayApi,
  method: 'GET' | 'POST',
  upstream: string,
  kind: RouteKind,
  body?: BodyShape,
): GatewayRoute {
  return { api, method, upstream, kind, endpoint: `${api}:${upstream}`, ...(body ? { body } : {}) }
}

/**
 * The allowlist: the only paths a gateway request can ever reach on Ollama. create, push, blobs, copy and
 * delete are absent on purpose (the owner manages models through `/api/models`).
 */
export const GATEWAY_ROUTES: ReadonlyMap<string, GatewayRoute> = new Map([
  ['/ollama/api/chat', r('ollama', 'POST', '/api/chat', 'infer', 'chat')],
  ['/ollama/api/generate', r('ollama', 'POST', '/api/generate', 'infer', 'generate')],
  ['/ollama/api/embed', r('ollama', 'POST', '/api/embed', 'infer', 'embed')],
  ['/ollama/api/embeddings', r('ollama', 'POST', '/api/embeddings', 'infer', 'embeddings')],
  ['/ollama/api/show', r('ollama', 'POST', '/api/show', 'show', 'show')],
  ['/ollama/api/pull', r('ollama', 'POST', '/api/pull', 'pull', 'pull')],
  ['/ollama/api/tags', r('ollama', 'GET', '/api/tags', 'tags')],
  ['/ollama/api/ps', r('ollama', 'GET', '/api/ps', 'ps')],
  ['/ollama/api/version', r('ollama', 'GET', '/api/version', 'version')],
  ['/v1/chat/completions', r('openai', 'POST', '/v1/chat/completions', 'infer', 'openai_chat')],
  ['/v1/completions', r('openai', 'POST', '/v1/completions', 'infer', 'openai_completion')],
  ['/v1/embeddings', r('openai', 'POST', '/v1/embeddings', 'infer', 'openai_embed')],
  ['/v1/models', r('openai', 'GET', '/v1/models', 'models')],
])

/** Whether the gateway answers this path at all (everything under `/ollama` and `/v1`, and `/metrics`). */
export function isGatewayPath(path: string): boolean {
  return (
    path === '/ollama' ||
    path.startsWith('/ollama/') ||
    path === '/v1' ||
    path.startsWith('/v1/') ||
    path === '/metrics'
  )
}

export function apiOf(path: string): GatewayApi {
  return path === '/v1' || path.startsWith('/v1/') ? 'openai' : 'ollama'
}

export type Resolved =
  | { ok: true; route: GatewayRoute }
  | { ok: false; status: 404 }
  | { ok: false; status: 405; allow: string }

/** Exact match on the raw (undecoded) path: `%2e`, trailing slashes and case variants are 404s. */
export function resolveRoute(method: string, path: string): Resolved {
  const route = GATEWAY_ROUTES.get(path)
  if (!route) return { ok: false, status: 404 }
  if (method !== route.method) return { ok: false, status: 405, allow: route.method }
  return { ok: true, route }
}

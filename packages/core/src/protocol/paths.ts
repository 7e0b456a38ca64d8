/**
 * Paths that belong to the host, never to the PWA shell: the server answers them itself (an unknown one is
 * a 404, never index.html) and the service worker neither caches them nor answers a navigation to them.
 */
export const HOST_PATHS = ['/api', '/ollama', '/v1', '/ws', '/metrics', '/healthz'] as const

/** Whether `path` is one of `HOST_PATHS` or below one. */
export function isHostPath(path: string): boolean {
  return HOST_PATHS.some((p) => path === p || path.startsWith(`${p}/`))
}

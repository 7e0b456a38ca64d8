import { fileURLToPath } from 'node:url'

/** Absolute path of the built PWA (index.html, assets, service worker) for a server to serve. */
export const distDir = fileURLToPath(new URL('./dist/', import.meta.url))

import { HOST_PATHS } from '@sharedllm/core/protocol'
import type { VitePWAOptions } from 'vite-plugin-pwa'

/**
 * Paths that belong to the host, never to the shell: the service worker must not cache them nor answer a
 * navigation to them with index.html. The one list is core's (the server's own fallback uses it too).
 */
export const NETWORK_ONLY_PREFIXES = HOST_PATHS

export const pwaOptions: Partial<VitePWAOptions> = {
  // 'prompt': a new version waits until the user accepts the update prompt (UpdatePrompt.vue).
  registerType: 'prompt',
  injectRegister: false,
  includeAssets: ['favicon.svg', 'apple-touch-icon.png'],
  manifest: {
    name: 'sharedLLM',
    short_name: 'sharedLLM',
    description: 'Share one GPU machine’s Ollama models safely with every device on your network',
    theme_color: '#0f766e',
    background_color: '#101014',
    display: 'standalone',
    start_url: '/',
    scope: '/',
    icons: [
      { src: '/icon-192.png', sizes: '192x192', type: 'image/png', purpose: 'any' },
      { src: '/icon-512.png', sizes: '512x512', type: 'image/png', purpose: 'any' },
      { src: '/icon-maskable-512.png', sizes: '512x512', type: 'image/png', purpose: 'maskable' },
    ],
  },
  workbox: {
    globPatterns: ['**/*.{js,css,html,svg,png,ico,webmanifest}'],
    navigateFallback: '/index.html',
    navigateFallbackDenylist: NETWORK_ONLY_PREFIXES.map((p) => new RegExp(`^${p}(/|$)`)),
    // No runtimeCaching: anything not precached (the API, the gateway, the socket) goes to the network.
    runtimeCaching: [],
    cleanupOutdatedCaches: true,
  },
}

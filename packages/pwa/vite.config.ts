import vue from '@vitejs/plugin-vue'
import { defineConfig, type ProxyOptions } from 'vite'
import { VitePWA } from 'vite-plugin-pwa'
import { bundleBudget } from './build/bundle-budget.ts'
import { pwaOptions } from './build/pwa.config.ts'

/** Where `pnpm dev` runs the server; override with SHAREDLLM_DEV_API. */
const api = process.env.SHAREDLLM_DEV_API ?? 'http://localhost:8080'

// The server requires a same-origin Origin on cookie-authenticated unsafe requests and on the socket, so
// the dev proxy presents the server's own origin.
const toServer = (ws = false): ProxyOptions => ({
  target: api,
  changeOrigin: true,
  ws,
  configure: (proxy) => {
    proxy.on('proxyReq', (req) => {
      if (req.getHeader('origin')) req.setHeader('origin', api)
    })
    proxy.on('proxyReqWs', (req) => req.setHeader('origin', api))
  },
})

export default defineConfig({
  resolve: { conditions: ['@sharedllm/source'] },
  plugins: [vue(), VitePWA(pwaOptions), bundleBudget(200)],
  server: {
    port: 5173,
    proxy: {
      '/api': toServer(),
      '/ollama': toServer(),
      '/v1': toServer(),
      '/healthz': toServer(),
      '/ws': toServer(true),
    },
  },
  build: { target: 'es2022', sourcemap: false, chunkSizeWarningLimit: 600 },
})

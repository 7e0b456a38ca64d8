import vue from '@vitejs/plugin-vue'
import { fileURLToPath } from 'node:url'
import { project } from '../../vitest.shared.ts'

export default project('pwa', {
  plugins: [vue()],
  resolve: {
    alias: {
      'virtual:pwa-register/vue': fileURLToPath(new URL('./test/stubs/pwa-register.ts', import.meta.url)),
    },
  },
  test: { environment: 'happy-dom', exclude: ['test/e2e/**'] },
})

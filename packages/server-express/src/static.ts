import { existsSync } from 'node:fs'
import { basename, join } from 'node:path'
import { isHostPath } from '@sharedllm/core'
import express, { type Request, type Response, Router } from 'express'

const NO_CACHE_FILES = new Set(['sw.js', 'manifest.webmanifest', 'registerSW.js', 'index.html'])

const NOT_BUILT = `<!doctype html><html lang="en"><meta charset="utf-8"><title>sharedLLM</title>
<body style="font-family:system-ui;max-width:40em;margin:3em auto"><h1>sharedLLM is running</h1>
<p>The dashboard is not built. Run <code>pnpm build</code> in the sharedLLM repository and reload.</p>
<p>The API answers at <code>/api</code>, the gateway at <code>/ollama</code> and <code>/v1</code>.</p></body></html>`

/**
 * Serves the built PWA: hashed assets cached for a year, the service worker and manifest revalidated on every
 * load (else a fixed app never reaches users), and the app's index.html for any other GET (deep links).
 */
export function staticRouter(dir: string): Router {
  const router = Router()
  const index = join(dir, 'index.html')
  router.use(
    express.static(dir, {
      index: false,
      redirect: false,
      dotfiles: 'ignore',
      setHeaders(res, path) {
        const name = basename(path)
        if (NO_CACHE_FILES.has(name) || name.startsWith('workbox-'))
          res.setHeader('Cache-Control', 'no-cache')
        else if (/[.-][A-Za-z0-9_-]{8,}\.(js|css|woff2?|png|svg|webp|jpg)$/.test(name)) {
          res.setHeader('Cache-Control', 'public, max-age=31536000, immutable')
        } else res.setHeader('Cache-Control', 'public, max-age=3600')
      },
    }),
  )
  router.use((req: Request, res: Response, next) => {
    if ((req.method !== 'GET' && req.method !== 'HEAD') || isHostPath(req.path)) return next()
    // A missing file (`/assets/old-hash.js`) is a 404, not the app: HTML served as JS breaks in confusing ways.
    if (/\.[A-Za-z0-9]{1,8}$/.test(req.path)) return next()
    res.setHeader('Cache-Control', 'no-cache')
    if (!existsSync(index)) {
      res.status(503).type('html').send(NOT_BUILT)
      return
    }
    res.sendFile(index, (err) => {
      if (err && !res.headersSent) next(err)
    })
  })
  return router
}

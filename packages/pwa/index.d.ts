/** Absolute path of the built PWA (index.html, assets, service worker) for a server to serve. */
export declare const distDir: string

import { project } from '../../vitest.shared.ts'

const config = project('server-express')
// Vitest hands ssr.resolve.conditions to Node as --conditions. With 'import' there, a CommonJS require() of
// a dual package (is-promise, used by Express's router) loads its ESM build and Express breaks.
if (config.ssr?.resolve) config.ssr.resolve.conditions = ['@sharedllm/source', 'node']

export default config

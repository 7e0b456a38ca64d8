export * from './events'
export * from './settings'
export * from './types'
export * from './api'

import { createRouter, createWebHistory, type RouteLocationRaw, type RouteRecordRaw } from 'vue-router'
import { ApiRequestError } from './api/http'
import { useSessionStore } from './stores/session'

declare module 'vue-router' {
  interface RouteMeta {
    /** Who may open the page: the admin, an approved device, or anyone. */
    area?: 'admin' | 'device' | 'public'
    title?: string
  }
}

export const routes: RouteRecordRaw[] = [
  {
    path: '/',
    name: 'home',
    component: () => import('./views/HomeView.vue'),
    meta: { area: 'public', title: 'Welcome' },
  },
  {
    path: '/offline',
    name: 'offline',
    component: () => import('./views/OfflineView.vue'),
    meta: { area: 'public', title: 'Offline' },
  },
  {
    path: '/login',
    name: 'login',
    component: () => import('./views/LoginView.vue'),
    meta: { area: 'public', title: 'Log in' },
  },
  {
    path: '/join',
    name: 'join',
    component: () => import('./views/device/JoinView.vue'),
    meta: { area: 'public', title: 'Request access' },
  },
  {
    path: '/waiting',
    name: 'waiting',
    component: () => import('./views/device/WaitingView.vue'),
    meta: { area: 'public', title: 'Waiting for approval' },
  },
  {
    path: '/app',
    component: () => import('./layouts/DeviceLayout.vue'),
    meta: { area: 'device' },
    children: [
      { path: '', redirect: { name: 'chat' } },
      {
        path: 'chat',
        name: 'chat',
        component: () => import('./views/ChatView.vue'),
        props: { mode: 'device' },
        meta: { area: 'device', title: 'Chat' },
      },
      {
        path: 'access',
        name: 'access',
        component: () => import('./views/device/AccessView.vue'),
        meta: { area: 'device', title: 'My access' },
      },
    ],
  },
  {
    path: '/admin',
    component: () => import('./layouts/AdminLayout.vue'),
    meta: { area: 'admin' },
    children: [
      {
        path: '',
        name: 'dashboard',
        component: () => import('./views/admin/DashboardView.vue'),
        meta: { area: 'admin', title: 'Dashboard' },
      },
      {
        path: 'chat',
        name: 'owner-chat',
        component: () => import('./views/ChatView.vue'),
        props: { mode: 'owner' },
        meta: { area: 'admin', title: 'Chat' },
      },
      {
        path: 'devices',
        name: 'devices',
        component: () => import('./views/admin/DevicesView.vue'),
        meta: { area: 'admin', title: 'Devices' },
      },
      {
        path: 'queue',
        name: 'queue',
        component: () => import('./views/admin/QueueView.vue'),
        meta: { area: 'admin', title: 'Queue' },
      },
      {
        path: 'pool',
        name: 'pool',
        component: () => import('./views/admin/PoolView.vue'),
        meta: { area: 'admin', title: 'Pool' },
      },
      {
        path: 'usage',
        name: 'usage',
        component: () => import('./views/admin/UsageView.vue'),
        meta: { area: 'admin', title: 'Usage' },
      },
      {
        path: 'models',
        name: 'models',
        component: () => import('./views/admin/ModelsView.vue'),
        meta: { area: 'admin', title: 'Models' },
      },
      {
        path: 'permissions',
        name: 'permissions',
        component: () => import('./views/admin/PermissionsView.vue'),
        meta: { area: 'admin', title: 'Permissions' },
      },
      {
        path: 'settings',
        name: 'settings',
        component: () => import('./views/admin/SettingsView.vue'),
        meta: { area: 'admin', title: 'Settings' },
      },
      {
        path: 'add-device',
        name: 'add-device',
        component: () => import('./views/admin/AddDeviceView.vue'),
        meta: { area: 'admin', title: 'Add a device' },
      },
      {
        path: 'audit',
        name: 'audit',
        component: () => import('./views/admin/AuditView.vue'),
        meta: { area: 'admin', title: 'Audit log' },
      },
    ],
  },
  { path: '/:rest(.*)*', redirect: '/' },
]

/** Where someone belongs when they open `/` or a page they may not see. */
export function homeFor(session: ReturnType<typeof useSessionStore>): RouteLocationRaw {
  if (session.kind === 'admin') return { name: 'dashboard' }
  if (session.kind === 'device') return { name: 'chat' }
  if (session.pendingJoin) return { name: 'waiting' }
  return { name: 'home' }
}

export function createAppRouter() {
  const router = createRouter({ history: createWebHistory(), routes })
  router.beforeEach(async (to) => {
    const session = useSessionStore()
    if (to.name === 'offline') return true
    if (session.kind === 'unknown') {
      try {
        await session.resolve()
      } catch (err) {
        // Offline, or the host is down: the cached shell says so instead of showing a login form.
        if (err instanceof ApiRequestError && err.code === 'NETWORK')
          return { name: 'offline', query: { next: to.fullPath } }
        session.kind = 'anonymous'
        session.notice = (err as Error).message
      }
    }
    const area = to.meta.area ?? 'public'
    if (to.name === 'home') {
      const home = homeFor(session)
      return typeof home === 'object' && 'name' in home && home.name === 'home' ? true : home
    }
    if (area === 'admin' && session.kind !== 'admin') return { name: 'login', query: { next: to.fullPath } }
    if (area === 'device' && session.kind !== 'device') return homeFor(session)
    return true
  })
  router.afterEach((to) => {
    document.title = to.meta.title ? `${to.meta.title} · sharedLLM` : 'sharedLLM'
  })
  return router
}

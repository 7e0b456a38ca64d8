import { type Hub, isAdmin, parseInput, type Principal } from '@sharedllm/core'
import type { Request, RequestHandler, Response, Router } from 'express'
import type { z } from 'zod'
import { type AuthVia, authResult, requireAdmin, requireOwner, requirePrincipal } from '../auth'

/**
 * `public`: anyone on the LAN; `principal`: the owner or an approved device; `admin`: the owner or an
 * admin-role device (devices and models); `owner`: the owner, or an admin-role device granted "manage"
 * (settings, roles, other devices' keys).
 */
export type Access = 'public' | 'principal' | 'admin' | 'owner'

export interface RouteContext<B, Q> {
  req: Request
  res: Response
  hub: Hub
  body: B
  query: Q
  params: Record<string, string>
  principal: Principal | null
  via: AuthVia | null
  /** Who the audit log names: `admin`, or `device:<id>` for a device with the admin role. */
  actor: string
}

export interface RouteDef<
  B extends z.ZodType | undefined = undefined,
  Q extends z.ZodType | undefined = undefined,
> {
  method: 'get' | 'post' | 'put' | 'patch' | 'delete'
  /** Express path, e.g. `/api/devices/:id`. */
  path: string
  access: Access
  summary: string
  /** Validated before the handler runs; a bad body is a 400 naming the field. */
  body?: B
  query?: Q
  /** Body schema for the OpenAPI document only, when core validates the body itself (after a rate limit). */
  docBody?: z.ZodType
  /** Status of a successful JSON answer. @default 200 (204 when the handler returns undefined) */
  status?: number
  /** The answer is NDJSON written by the handler itself. */
  ndjson?: boolean
  handler(
    ctx: RouteContext<
      B extends z.ZodType ? z.output<B> : undefined,
      Q extends z.ZodType ? z.output<Q> : undefined
    >,
  ): Promise<unknown> | unknown
}

// biome-ignore lint/suspicious/noExplicitAny: a heterogeneous list of routes, each typed where it is defined
export type AnyRoute = RouteDef<any, any>

/** Identity with inference, so each route's handler sees its own body and query types. */
export function route<
  B extends z.ZodType | undefined = undefined,
  Q extends z.ZodType | undefined = undefined,
>(def: RouteDef<B, Q>): RouteDef<B, Q> {
  return def
}

const guards: Record<Access, RequestHandler[]> = {
  public: [],
  principal: [requirePrincipal],
  admin: [requireAdmin],
  owner: [requireOwner],
}

export function actorOf(principal: Principal | null): string {
  if (principal?.kind === 'device') return `device:${principal.device.id}`
  return 'admin'
}

/** Adds routes to a router: auth guard, validation, then the handler's result as JSON. */
export function mount(router: Router, hub: Hub, routes: AnyRoute[]): void {
  for (const def of routes) {
    router[def.method](def.path, ...guards[def.access], async (req: Request, res: Response) => {
      const body = def.body ? parseInput(def.body, req.body, 'body') : undefined
      const query = def.query ? parseInput(def.query, req.query, 'query') : undefined
      const auth = await authResult(req)
      const principal = auth?.principal ?? null
      const result = await def.handler({
        req,
        res,
        hub,
        body,
        query,
        params: req.params as Record<string, string>,
        principal,
        via: auth?.via ?? null,
        actor: isAdmin(principal) ? actorOf(principal) : 'anonymous',
      })
      if (res.headersSent || res.writableEnded) return
      if (result === undefined) res.status(204).end()
      else res.status(def.status ?? 200).json(result)
    })
  }
}

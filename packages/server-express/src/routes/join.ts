import { type ClaimResponse, type JoinResponse, joinSchema, type PairingResponse } from '@sharedllm/core'
import type { Request } from 'express'
import { z } from 'zod'
import { bearerOf, sourceOf } from '../auth'
import { type AnyRoute, route } from './define'

/** The peer address in one spelling (IPv4-mapped as IPv4), for rate limits and the device record. */
export function clientIp(req: Request): string {
  return sourceOf(req)
}

export const pairingSchema = z.strictObject({
  role_id: z.string().trim().min(1, 'must name a role').max(100),
})

export const joinRoutes: AnyRoute[] = [
  route({
    method: 'post',
    path: '/api/join',
    access: 'public',
    summary: 'File a join request (anyone on the LAN; rate limited per address)',
    status: 201,
    docBody: joinSchema,
    // The body is validated by core after the rate limit, so floods of junk count against the limit too.
    // A bearer device key, when sent, is the proof that lets a host re-join as the device it already is.
    handler: ({ req, hub }): Promise<JoinResponse> => hub.access.join(req.body, clientIp(req), bearerOf(req)),
  }),
  route({
    method: 'get',
    path: '/api/join/:request_id',
    access: 'public',
    summary: 'Poll a join request with header X-Claim-Secret; the key is handed over exactly once',
    handler: ({ req, hub, params }): Promise<ClaimResponse> => {
      const secret = req.headers['x-claim-secret']
      return hub.access.claim(
        params.request_id!,
        typeof secret === 'string' ? secret : undefined,
        clientIp(req),
      )
    },
  }),
  route({
    method: 'post',
    path: '/api/pairing',
    access: 'admin',
    summary: 'A one-time pairing code: a device joining with it is approved at once with the role',
    body: pairingSchema,
    status: 201,
    handler: ({ hub, body, actor }): Promise<PairingResponse> =>
      hub.access.createPairingCode(body.role_id, actor),
  }),
]

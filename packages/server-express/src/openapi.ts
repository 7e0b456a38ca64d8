import { z } from 'zod'
import type { AnyRoute } from './routes/define'

type JsonSchema = Record<string, unknown>

function schemaOf(schema: z.ZodType, io: 'input' | 'output'): JsonSchema {
  try {
    const { $schema: _, ...rest } = z.toJSONSchema(schema, { io, unrepresentable: 'any' }) as JsonSchema
    return rest
  } catch {
    return {}
  }
}

/** `/api/devices/:id` → `/api/devices/{id}` */
function openApiPath(path: string): { path: string; params: string[] } {
  const params: string[] = []
  const converted = path.replace(/:([A-Za-z_]+)/g, (_, name: string) => {
    params.push(name)
    return `{${name}}`
  })
  return { path: converted, params }
}

const errorResponse = {
  description: 'Error',
  content: {
    'application/json': {
      schema: {
        type: 'object',
        required: ['error', 'code'],
        properties: { error: { type: 'string' }, code: { type: 'string' }, details: { type: 'object' } },
      },
    },
  },
}

/**
 * OpenAPI 3.1 for the REST API, built from the route table and the very zod schemas that validate requests,
 * so the document cannot drift from what the server accepts.
 */
export function buildOpenApi(routes: AnyRoute[], version: string): JsonSchema {
  const paths: Record<string, Record<string, unknown>> = {}
  for (const r of routes) {
    const { path, params } = openApiPath(r.path)
    const parameters: unknown[] = params.map((name) => ({
      name,
      in: 'path',
      required: true,
      schema: { type: 'string' },
    }))
    if (r.query) {
      const q = schemaOf(r.query, 'input') as { properties?: Record<string, unknown>; required?: string[] }
      for (const [name, schema] of Object.entries(q.properties ?? {})) {
        parameters.push({ name, in: 'query', required: q.required?.includes(name) ?? false, schema })
      }
    }
    if (r.path === '/api/join/:request_id') {
      parameters.push({ name: 'X-Claim-Secret', in: 'header', required: true, schema: { type: 'string' } })
    }
    const bodySchema = r.body ?? r.docBody
    const ok = r.status ?? 200
    const op: Record<string, unknown> = {
      summary: r.summary,
      operationId: `${r.method}${path.replace(/[^A-Za-z0-9]+(.)?/g, (_, c: string | undefined) => (c ? c.toUpperCase() : ''))}`,
      security: r.access === 'public' ? [] : [{ bearer: [] }, { cookie: [] }],
      ...(parameters.length > 0 ? { parameters } : {}),
      ...(bodySchema
        ? {
            requestBody: {
              required: true,
              content: { 'application/json': { schema: schemaOf(bodySchema, 'input') } },
            },
          }
        : {}),
      responses: {
        [String(ok)]: {
          description: 'Success',
          ...(r.ndjson ? { content: { 'application/x-ndjson': { schema: { type: 'object' } } } } : {}),
        },
        default: errorResponse,
      },
      'x-access': r.access,
    }
    paths[path] ??= {}
    paths[path][r.method] = op
  }
  return {
    openapi: '3.1.0',
    info: { title: 'sharedLLM host API', version },
    components: {
      securitySchemes: {
        bearer: { type: 'http', scheme: 'bearer', description: 'Admin secret, or a device key for /api/me' },
        cookie: { type: 'apiKey', in: 'cookie', name: 'sllm_session' },
      },
    },
    paths,
  }
}

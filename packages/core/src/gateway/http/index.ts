export {
  type AuthResult,
  type AuthVia,
  authenticateRequest,
  bearerToken,
  checkCookieOrigin,
  cookieOf,
  isSameOrigin,
  isSecure,
  SESSION_COOKIE,
  sourceOf,
  unauthorized,
} from './auth'
export { BodyMeter, parseObject, readJsonObject } from './body'
export { createGatewayHandler, type GatewayHandler, type GatewayOptions } from './handler'
export { InFlight } from './inflight'
export { type ForwardOutcome, type ForwardResult, forward } from './proxy'
export { asGatewayError, errorBody, retryAfterSeconds, sendGatewayError, sendJson } from './respond'
export {
  apiOf,
  GATEWAY_ROUTES,
  type GatewayApi,
  type GatewayRoute,
  isGatewayPath,
  resolveRoute,
  type RouteKind,
} from './routes'
export { countsFrom, tapFor, type UsageCounts, type UsageTap } from './usage-tap'

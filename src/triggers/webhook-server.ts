/**
 * The webhook server: one HTTP server per runtime serving every webhook entry point, `GET /healthz` and
 * `GET /metrics`.
 *
 * Why fastify rather than `node:http`: it enforces the body limit while streaming (a request that says
 * or sends more than `bodyLimitBytes` is cut off with 413 before it is buffered), refuses malformed
 * framing (bad `Content-Length`, aborted uploads) with 4xx answers, routes with a prebuilt radix tree,
 * and closes idle keep-alive connections on shutdown — all of which we would otherwise hand-write. We
 * keep the raw body (one catch-all buffer parser) because the signature is over the exact bytes sent.
 *
 * The contract (docs/architecture.md, "Webhook contract"): `202 {"executionId"}`; `401` for a missing or wrong signature; `413` over
 * the body limit; `400` for a JSON content type with a malformed body; `404` for an unknown path; `405`
 * (with `Allow`) for a method the path does not accept; `429` with `Retry-After` when the stream's queue is
 * full; `503` while the runtime is not running, and (with `Retry-After`) while Redis is unavailable in cluster
 * mode. Every error answer is `{"error": {"code", "message"}}`.
 * The input is the parsed JSON body (`+json` types included), any other body as a UTF-8 string, and
 * `null` for an empty body. `ctx.meta` is `{ trigger: 'webhook', path, method, query, headers }` where
 * `headers` lacks the signature. `Idempotency-Key` becomes the trigger's idempotency key and
 * `X-Correlation-Id` its correlation id. Secrets never appear in answers, events or metrics.
 *
 * @module
 */

import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
import { environmentIssues, RESERVED_WEBHOOK_PATHS, type ResolvedRuntimeConfig } from '../config/index.js'
import { AgentPoolError, ConfigError, describeValue, ErrorCode, WebhookRequestError } from '../errors.js'
import type { TriggerHost } from './host.js'
import { explainListenError, urlOf } from './listen.js'
import { type TriggerMetrics, UNMATCHED_ROUTE } from './metrics.js'
import { SIGNATURE_HEADER, verifyWebhookSignature } from './signature.js'

/** Longest `Idempotency-Key` / `X-Correlation-Id` accepted. */
const MAX_KEY_LENGTH = 256

/** `Retry-After` while Redis is unavailable (cluster mode): hosts reconnect within about a second. */
const CLUSTER_RETRY_AFTER_S = 1

/** Upper bound of the `Retry-After` estimate, in seconds. */
const MAX_RETRY_AFTER_S = 60

interface Target {
  entryPointId: string
  /** The HMAC key, read from `secretEnv` at start; `undefined` when the trigger is unsigned. */
  secret: Buffer | undefined
}

/** path → method → entry point. */
type Routes = Map<string, Map<string, Target>>

/** A running webhook server. */
export class WebhookServer {
  private constructor(
    private readonly app: FastifyInstance,
    /** Base URL, e.g. `http://127.0.0.1:43123`. */
    readonly url: string,
  ) {}

  /**
   * Builds the routes (reading each `secretEnv` now) and listens on `webhook.host:webhook.port`.
   * @throws {ConfigError} when a `secretEnv` variable is unset or empty: the server never runs unsigned by accident.
   */
  static async start(
    host: TriggerHost,
    config: ResolvedRuntimeConfig,
    metrics: TriggerMetrics,
  ): Promise<WebhookServer> {
    const routes = buildRoutes(config)
    const app = Fastify({
      logger: false,
      bodyLimit: config.webhook.bodyLimitBytes,
      exposeHeadRoutes: false,
      forceCloseConnections: 'idle',
    })
    app.removeAllContentTypeParsers()
    app.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => done(null, body))
    app.addHook('onResponse', async (req, reply) => {
      const path = pathOf(req)
      const known = routes.has(path) || isReserved(path)
      metrics.countRequest(known ? path : UNMATCHED_ROUTE, req.method, reply.statusCode)
    })
    app.setErrorHandler((err: { statusCode?: number; message: string }, _req, reply) => {
      const refused = framingError(err, config.webhook.bodyLimitBytes)
      return refused
        ? sendError(reply, refused)
        : reply.code(500).send(errorBody(ErrorCode.INTERNAL, 'internal error'))
    })
    app.setNotFoundHandler((req, reply) => {
      const path = pathOf(req)
      const methods = isReserved(path) ? ['GET'] : [...(routes.get(path)?.keys() ?? [])]
      if (methods.length === 0) {
        return sendError(
          reply,
          new WebhookRequestError(
            ErrorCode.WEBHOOK_NOT_FOUND,
            404,
            `no webhook is served at ${describeValue(path)}`,
          ),
        )
      }
      reply.header('allow', methods.join(', '))
      return sendError(
        reply,
        new WebhookRequestError(
          ErrorCode.WEBHOOK_METHOD_NOT_ALLOWED,
          405,
          `${req.method} is not allowed on ${path}; allowed: ${methods.join(', ')}`,
        ),
      )
    })
    app.get('/healthz', async () => ({ status: 'ok' }))
    app.get('/metrics', async (_req, reply) => {
      const text = await metrics.render()
      return reply.type(metrics.contentType).send(text)
    })
    for (const [path, byMethod] of routes) {
      app.route({
        method: [...byMethod.keys()],
        url: path,
        handler: (req, reply) => deliver(host, byMethod.get(req.method)!, path, req, reply),
      })
    }
    const { host: address, port } = config.webhook
    try {
      await app.listen({ host: address, port })
    } catch (err) {
      await app.close()
      throw explainListenError(err, 'webhook', address, port)
    }
    return new WebhookServer(app, urlOf(app.server, address, port))
  }

  /** Stops accepting connections, lets requests in flight finish, closes idle keep-alive connections. */
  async close(): Promise<void> {
    await this.app.close()
  }
}

function buildRoutes(config: ResolvedRuntimeConfig): Routes {
  const issues = environmentIssues(config)
  if (issues.length > 0) throw new ConfigError(issues, config.source)
  const routes: Routes = new Map()
  for (const ep of config.entryPoints) {
    const t = ep.trigger
    if (t.type !== 'webhook') continue
    const secret = t.secretEnv === undefined ? undefined : Buffer.from(process.env[t.secretEnv]!, 'utf8')
    const byMethod = routes.get(t.path) ?? new Map<string, Target>()
    for (const m of t.methods) byMethod.set(m, { entryPointId: ep.id, secret })
    routes.set(t.path, byMethod)
  }
  return routes
}

async function deliver(
  host: TriggerHost,
  target: Target,
  path: string,
  req: FastifyRequest,
  reply: FastifyReply,
): Promise<FastifyReply> {
  const raw = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0)
  if (
    target.secret !== undefined &&
    !verifyWebhookSignature(target.secret, raw, req.headers[SIGNATURE_HEADER])
  ) {
    const missing = req.headers[SIGNATURE_HEADER] === undefined
    return sendError(
      reply,
      new WebhookRequestError(
        ErrorCode.WEBHOOK_SIGNATURE,
        401,
        missing
          ? `missing ${SIGNATURE_HEADER} header; sign the raw body with HMAC-SHA256 and send sha256=<hex>`
          : `${SIGNATURE_HEADER} does not match the body`,
      ),
    )
  }
  const input = parseBody(raw, req.headers['content-type'])
  if (input instanceof WebhookRequestError) return sendError(reply, input)
  const idempotencyKey = headerValue(req, 'idempotency-key')
  const correlationId = headerValue(req, 'x-correlation-id')
  for (const [name, value] of [
    ['Idempotency-Key', idempotencyKey],
    ['X-Correlation-Id', correlationId],
  ] as const) {
    if (value instanceof WebhookRequestError) return sendError(reply, value)
    if (value !== undefined && (value.length === 0 || value.length > MAX_KEY_LENGTH)) {
      return sendError(
        reply,
        new WebhookRequestError(
          ErrorCode.WEBHOOK_BAD_REQUEST,
          400,
          `${name} must be 1-${MAX_KEY_LENGTH} characters`,
        ),
      )
    }
  }
  const { [SIGNATURE_HEADER]: _signature, ...headers } = req.headers
  const meta = { trigger: 'webhook', path, method: req.method, query: { ...(req.query as object) }, headers }
  const id = target.entryPointId
  let executionId: string
  try {
    executionId = await host.trigger(id, input, {
      idempotencyKey: idempotencyKey as string | undefined,
      correlationId: correlationId as string | undefined,
      meta,
      onAdmitted: (admitted) => {
        // The execution's correlation id: the caller's, or (as the engine gives it) the execution's own id.
        const correlation = (correlationId as string | undefined) ?? admitted
        host.events.publish({
          type: 'webhook_received',
          streamId: id,
          executionId: admitted,
          correlationId: correlation,
          data: { path, method: req.method },
        })
        host.events.publish({
          type: 'trigger_fired',
          streamId: id,
          executionId: admitted,
          correlationId: correlation,
          data: { entryPointId: id, triggerType: 'webhook' },
        })
      },
    })
  } catch (err) {
    return sendTriggerError(host, id, reply, err)
  }
  return reply.code(202).send({ executionId })
}

/** `/healthz` and `/metrics`: served by the server itself, GET only. */
function isReserved(path: string): boolean {
  return (RESERVED_WEBHOOK_PATHS as readonly string[]).includes(path)
}

/** The request path without its query string. */
function pathOf(req: FastifyRequest): string {
  const q = req.url.indexOf('?')
  return q === -1 ? req.url : req.url.slice(0, q)
}

function headerValue(req: FastifyRequest, name: string): string | undefined | WebhookRequestError {
  const v = req.headers[name]
  if (Array.isArray(v))
    return new WebhookRequestError(ErrorCode.WEBHOOK_BAD_REQUEST, 400, `${name} must be sent once`)
  return v
}

function isJson(contentType: string | undefined): boolean {
  if (contentType === undefined) return false
  const type = contentType.split(';', 1)[0]!.trim().toLowerCase()
  return type === 'application/json' || type.endsWith('+json')
}

function parseBody(raw: Buffer, contentType: string | undefined): unknown {
  if (raw.length === 0) return null
  const text = raw.toString('utf8')
  if (!isJson(contentType)) return text
  try {
    return JSON.parse(text)
  } catch (err) {
    return new WebhookRequestError(
      ErrorCode.WEBHOOK_BAD_REQUEST,
      400,
      `malformed JSON body: ${(err as Error).message}`,
    )
  }
}

/** Turns fastify's own refusals (body too large, bad framing) into contract answers; `undefined` for anything else. */
function framingError(
  err: { statusCode?: number; message: string },
  bodyLimit: number,
): WebhookRequestError | undefined {
  if (err.statusCode === 413) {
    return new WebhookRequestError(
      ErrorCode.WEBHOOK_BODY_TOO_LARGE,
      413,
      `request body exceeds ${bodyLimit} bytes (webhook.bodyLimitBytes)`,
    )
  }
  if (err.statusCode !== undefined && err.statusCode >= 400 && err.statusCode < 500) {
    return new WebhookRequestError(ErrorCode.WEBHOOK_BAD_REQUEST, err.statusCode, err.message)
  }
  return undefined
}

function sendTriggerError(
  host: TriggerHost,
  entryPointId: string,
  reply: FastifyReply,
  err: unknown,
): FastifyReply {
  const code = err instanceof AgentPoolError ? err.code : undefined
  if (code === ErrorCode.QUEUE_FULL) {
    reply.header('retry-after', String(retryAfterSeconds(host, entryPointId)))
    return reply.code(429).send(errorBody(code, (err as Error).message))
  }
  if (code === ErrorCode.NOT_RUNNING) return reply.code(503).send(errorBody(code, (err as Error).message))
  if (code === ErrorCode.CLUSTER_UNAVAILABLE) {
    reply.header('retry-after', String(CLUSTER_RETRY_AFTER_S))
    return reply.code(503).send(errorBody(code, (err as Error).message))
  }
  if (code === ErrorCode.INVALID_ARGUMENT)
    return reply.code(400).send(errorBody(code, (err as Error).message))
  return reply.code(500).send(errorBody(ErrorCode.INTERNAL, 'internal error'))
}

/** How long until the queue has likely moved on: queued waves × median latency, within [1, 60] s. */
function retryAfterSeconds(host: TriggerHost, entryPointId: string): number {
  const s = host.stats().streams[entryPointId]
  if (s === undefined) return 1
  const waves = Math.ceil(s.queued / Math.max(1, s.maxConcurrent))
  return Math.min(MAX_RETRY_AFTER_S, Math.max(1, Math.ceil((waves * s.latencyMs.p50) / 1000)))
}

function errorBody(code: string, message: string): { error: { code: string; message: string } } {
  return { error: { code, message } }
}

function sendError(reply: FastifyReply, err: WebhookRequestError): FastifyReply {
  return reply.code(err.status).send(errorBody(err.code, err.message))
}

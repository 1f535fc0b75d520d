import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { resolveConfig } from '../src/config/index.js'
import { ConfigError, ErrorCode } from '../src/errors.js'
import { SIGNATURE_HEADER, signWebhookBody, startTriggers, type Triggers } from '../src/triggers/index.js'
import { FakeHost } from './fixtures/triggers/fake-host.js'

const baseDir = fileURLToPath(new URL('./fixtures/config/', import.meta.url))
const SECRET = 's3cr3t-value-for-tests'
const SECRET_ENV = 'AGENTPOOL_TEST_WEBHOOK_SECRET'
const handler = './noop-handler.ts'

const config = resolveConfig(
  {
    webhook: { bodyLimitBytes: 1024 },
    entryPoints: [
      { id: 'tickets', handler, trigger: { type: 'webhook', path: '/tickets', secretEnv: SECRET_ENV } },
      { id: 'open', handler, trigger: { type: 'webhook', path: '/open', methods: ['POST', 'PUT'] } },
      { id: 'ping', handler, trigger: { type: 'webhook', path: '/ping', methods: ['GET'] } },
      { id: 'other', handler, trigger: { type: 'api' } },
    ],
  },
  { baseDir },
)

let host: FakeHost
let triggers: Triggers
let url: string

beforeAll(async () => {
  process.env[SECRET_ENV] = SECRET
  host = new FakeHost(['tickets', 'open', 'ping', 'other'])
  triggers = await startTriggers(host, config)
  url = triggers.webhookUrl!
})
afterAll(async () => {
  await triggers.stop()
  delete process.env[SECRET_ENV]
})
beforeEach(() => {
  host.full.clear()
})

function post(path: string, body: string, headers: Record<string, string> = {}, method = 'POST') {
  return fetch(url + path, { method, body, headers: { 'content-type': 'application/json', ...headers } })
}

function signed(body: string, headers: Record<string, string> = {}) {
  return post('/tickets', body, { [SIGNATURE_HEADER]: signWebhookBody({ body, secret: SECRET }), ...headers })
}

async function expectError(res: Response, status: number, code: string): Promise<string> {
  expect(res.status).toBe(status)
  expect(res.headers.get('content-type')).toMatch(/^application\/json/)
  const body = (await res.json()) as { error: { code: string; message: string } }
  expect(body.error.code).toBe(code)
  expect(body.error.message.length).toBeGreaterThan(0)
  return body.error.message
}

describe('webhook server', () => {
  it('listens on 127.0.0.1 at a free port by default', () => {
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/)
  })

  it('answers 202 with the execution id, the parsed body as input and the request in ctx.meta', async () => {
    const received = host.events.waitFor({ types: ['webhook_received'], streamId: 'open' })
    const fired = host.events.waitFor({ types: ['trigger_fired'], streamId: 'open' })
    const res = await post(
      '/open?source=zendesk&tag=a&tag=b',
      '{"ticketId":42}',
      { 'x-custom': 'yes' },
      'PUT',
    )
    expect(res.status).toBe(202)
    const { executionId } = (await res.json()) as { executionId: string }
    const call = host.calls.find((c) => c.executionId === executionId)!
    expect(call.entryPointId).toBe('open')
    expect(call.input).toEqual({ ticketId: 42 })
    expect(call.opts.meta).toMatchObject({
      trigger: 'webhook',
      path: '/open',
      method: 'PUT',
      query: { source: 'zendesk', tag: ['a', 'b'] },
      headers: { 'x-custom': 'yes', 'content-type': 'application/json' },
    })
    expect((await received).data).toEqual({ path: '/open', method: 'PUT' })
    expect((await received).executionId).toBe(executionId)
    expect((await fired).data).toEqual({ entryPointId: 'open', triggerType: 'webhook' })
  })

  it('delivers a JSON+suffix body parsed, any other body as a string, and an empty body as null', async () => {
    const inputs: unknown[] = []
    for (const [body, type] of [
      ['{"a":[1,2]}', 'application/vnd.api+json; charset=utf-8'],
      ['plain words', 'text/plain'],
      ['', 'application/json'],
    ]) {
      const res = await post('/open', body!, { 'content-type': type! })
      expect(res.status).toBe(202)
      const { executionId } = (await res.json()) as { executionId: string }
      inputs.push(host.calls.find((c) => c.executionId === executionId)!.input)
    }
    expect(inputs).toEqual([{ a: [1, 2] }, 'plain words', null])
  })

  it('accepts a correctly signed body and keeps the signature out of ctx.meta', async () => {
    const res = await signed('{"ticketId":1}')
    expect(res.status).toBe(202)
    const { executionId } = (await res.json()) as { executionId: string }
    const meta = host.calls.find((c) => c.executionId === executionId)!.opts.meta as {
      headers: Record<string, unknown>
    }
    expect(meta.headers[SIGNATURE_HEADER]).toBeUndefined()
    expect(JSON.stringify(meta)).not.toContain(SECRET)
  })

  it('answers 401 to a missing, wrong, malformed or repeated signature, or a tampered body, and starts nothing', async () => {
    const before = host.calls.length
    const body = '{"ticketId":2}'
    const cases: Array<[string, RequestInit['headers']]> = [
      ['missing', {}],
      ['wrong key', { [SIGNATURE_HEADER]: signWebhookBody({ body, secret: 'other-secret' }) }],
      ['malformed', { [SIGNATURE_HEADER]: 'sha256=zz' }],
      [
        'no scheme',
        { [SIGNATURE_HEADER]: signWebhookBody({ body, secret: SECRET }).slice('sha256='.length) },
      ],
      ['tampered body', { [SIGNATURE_HEADER]: signWebhookBody({ body: '{"ticketId":3}', secret: SECRET }) }],
    ]
    for (const [what, headers] of cases) {
      const res = await fetch(`${url}/tickets`, {
        method: 'POST',
        body,
        headers: { 'content-type': 'application/json', ...(headers as Record<string, string>) },
      })
      const message = await expectError(res, 401, ErrorCode.WEBHOOK_SIGNATURE)
      expect(message, what).not.toContain(SECRET)
    }
    const repeated = new Headers({ 'content-type': 'application/json' })
    repeated.append(SIGNATURE_HEADER, signWebhookBody({ body, secret: SECRET }))
    repeated.append(SIGNATURE_HEADER, signWebhookBody({ body, secret: SECRET }))
    await expectError(
      await fetch(`${url}/tickets`, { method: 'POST', body, headers: repeated }),
      401,
      ErrorCode.WEBHOOK_SIGNATURE,
    )
    expect(host.calls.length).toBe(before)
  })

  it('checks the signature over the raw bytes, before parsing: a signed malformed body is 400, an unsigned one 401', async () => {
    await expectError(await signed('{not json'), 400, ErrorCode.WEBHOOK_BAD_REQUEST)
    await expectError(await post('/tickets', '{not json'), 401, ErrorCode.WEBHOOK_SIGNATURE)
  })

  it('answers 400 to a JSON content type with a malformed body', async () => {
    const message = await expectError(await post('/open', '{"a":'), 400, ErrorCode.WEBHOOK_BAD_REQUEST)
    expect(message).toMatch(/^malformed JSON body/)
  })

  it('answers 413 to a body over bodyLimitBytes and 202 to one exactly at it', async () => {
    const at = JSON.stringify({ pad: 'x'.repeat(1024 - 10) })
    expect(Buffer.byteLength(at)).toBe(1024)
    expect((await post('/open', at)).status).toBe(202)
    const message = await expectError(await post('/open', `${at} `), 413, ErrorCode.WEBHOOK_BODY_TOO_LARGE)
    expect(message).toBe('request body exceeds 1024 bytes (webhook.bodyLimitBytes)')
  })

  it('answers 404 to an unknown path and 405 with Allow to a method the path does not take', async () => {
    await expectError(await post('/nope', '{}'), 404, ErrorCode.WEBHOOK_NOT_FOUND)
    await expectError(await post('/open/', '{}'), 404, ErrorCode.WEBHOOK_NOT_FOUND)
    const res = await post('/open', '{}', {}, 'DELETE')
    expect(res.headers.get('allow')).toBe('POST, PUT')
    expect(await expectError(res, 405, ErrorCode.WEBHOOK_METHOD_NOT_ALLOWED)).toBe(
      'DELETE is not allowed on /open; allowed: POST, PUT',
    )
    const get = await fetch(`${url}/tickets`)
    expect(get.headers.get('allow')).toBe('POST')
    await expectError(get, 405, ErrorCode.WEBHOOK_METHOD_NOT_ALLOWED)
    await expectError(await post('/healthz', '{}'), 405, ErrorCode.WEBHOOK_METHOD_NOT_ALLOWED)
  })

  it('serves a GET webhook with a null input and the query in ctx.meta', async () => {
    const res = await fetch(`${url}/ping?n=1`)
    expect(res.status).toBe(202)
    const { executionId } = (await res.json()) as { executionId: string }
    const call = host.calls.find((c) => c.executionId === executionId)!
    expect(call.input).toBeNull()
    expect(call.opts.meta).toMatchObject({ method: 'GET', query: { n: '1' } })
  })

  it('answers 429 with Retry-After when the stream queue is full, estimated from queue depth and latency', async () => {
    host.full.add('open')
    Object.assign(host.streams.open!, { queued: 5, latencyMs: { p50: 1500, p95: 2000, p99: 2500 } })
    const res = await post('/open', '{}')
    expect(res.headers.get('retry-after')).toBe('5')
    const message = await expectError(res, 429, ErrorCode.QUEUE_FULL)
    expect(message).toContain('stream "open" is full')
    Object.assign(host.streams.open!, { queued: 0, latencyMs: { p50: 0, p95: 0, p99: 0 } })
    host.full.delete('open')
    expect((await post('/open', '{}')).status).toBe(202)
  })

  it('passes Idempotency-Key through, so a redelivery returns the first execution id', async () => {
    const before = host.callsFor('open').length
    const ids = []
    for (let i = 0; i < 3; i++) {
      const res = await post('/open', '{"delivery":1}', {
        'idempotency-key': 'delivery-abc',
        'x-correlation-id': 'corr-1',
      })
      expect(res.status).toBe(202)
      ids.push(((await res.json()) as { executionId: string }).executionId)
    }
    expect(new Set(ids).size).toBe(1)
    expect(host.callsFor('open').length).toBe(before + 1)
    expect(host.callsFor('open').at(-1)!.opts).toMatchObject({
      idempotencyKey: 'delivery-abc',
      correlationId: 'corr-1',
    })
    await expectError(
      await post('/open', '{}', { 'idempotency-key': 'k'.repeat(257) }),
      400,
      ErrorCode.WEBHOOK_BAD_REQUEST,
    )
  })

  it('serves /healthz', async () => {
    const res = await fetch(`${url}/healthz`)
    expect(res.status).toBe(200)
    expect(await res.json()).toEqual({ status: 'ok' })
  })

  it('serves /metrics in Prometheus text: executions, queue depth, latency, state, requests — and no secret', async () => {
    Object.assign(host.streams.other!, { completed: 11, failed: 2, timedOut: 1, queued: 4, running: 1 })
    host.events.publish({
      type: 'execution_completed',
      streamId: 'other',
      executionId: 'x1',
      data: { attempt: 1, durationMs: 20 },
    })
    host.events.publish({
      type: 'execution_failed',
      streamId: 'other',
      executionId: 'x2',
      data: {
        attempt: 1,
        status: 'timed_out',
        error: { code: 'AGENTPOOL_TIMEOUT', message: 't' },
        durationMs: 3000,
      },
    })
    await post('/nope', '{}')
    const res = await fetch(`${url}/metrics`)
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/)
    const text = await res.text()
    for (const line of [
      'agentpool_executions_total{stream="other",status="completed"} 11',
      'agentpool_executions_total{stream="other",status="failed"} 2',
      'agentpool_executions_total{stream="other",status="timed_out"} 1',
      'agentpool_queue_depth{stream="other"} 4',
      'agentpool_executions_running{stream="other"} 1',
      'agentpool_stream_max_queue{stream="other"} 5',
      'agentpool_execution_duration_seconds_bucket{le="0.025",stream="other",status="completed"} 1',
      'agentpool_execution_duration_seconds_count{stream="other",status="timed_out"} 1',
      'agentpool_state_bytes_used 4096',
      'agentpool_state_keys 7',
      'agentpool_state_conflicts_total 3',
      'agentpool_pool_threads 2',
      '# TYPE agentpool_execution_duration_seconds histogram',
    ]) {
      expect(text).toContain(line)
    }
    expect(text).toMatch(
      /agentpool_webhook_requests_total\{route="\/tickets",method="POST",status="401"\} [1-9]/,
    )
    expect(text).toMatch(
      /agentpool_webhook_requests_total\{route="unmatched",method="POST",status="404"\} [1-9]/,
    )
    expect(text).not.toContain(SECRET)
    expect(text).not.toContain('/nope')
  })
})

describe('webhook server start and stop', () => {
  it('refuses to start when a secretEnv variable is unset, naming the field and the variable only', async () => {
    delete process.env.AGENTPOOL_TEST_UNSET_SECRET
    const cfg = resolveConfig(
      {
        entryPoints: [
          {
            id: 'w',
            handler,
            trigger: { type: 'webhook', path: '/w', secretEnv: 'AGENTPOOL_TEST_UNSET_SECRET' },
          },
        ],
      },
      { baseDir },
    )
    const err = await startTriggers(new FakeHost(['w']), cfg).then(
      () => undefined,
      (e: unknown) => e,
    )
    expect(err).toBeInstanceOf(ConfigError)
    expect((err as ConfigError).issues).toEqual([
      {
        path: 'entryPoints[0].trigger.secretEnv',
        message:
          "environment variable AGENTPOOL_TEST_UNSET_SECRET is not set (or empty); set it to the webhook's signing secret",
        value: 'AGENTPOOL_TEST_UNSET_SECRET',
      },
    ])
  })

  it('starts no server without webhook entry points, and stops refusing connections after stop()', async () => {
    const none = await startTriggers(
      new FakeHost(['a']),
      resolveConfig({ entryPoints: [{ id: 'a', handler, trigger: { type: 'api' } }] }, { baseDir }),
    )
    expect(none.webhookUrl).toBeUndefined()
    await none.stop()
    const cfg = resolveConfig(
      { entryPoints: [{ id: 'w', handler, trigger: { type: 'webhook', path: '/w' } }] },
      { baseDir },
    )
    const t = await startTriggers(new FakeHost(['w']), cfg)
    expect((await fetch(`${t.webhookUrl}/healthz`)).status).toBe(200)
    await t.stop()
    await expect(fetch(`${t.webhookUrl}/healthz`)).rejects.toThrow()
  })
})

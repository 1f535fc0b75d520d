import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { request } from 'node:http'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type AgentPoolError, AgentRuntime, ConfigError, ErrorCode } from '../src/index.js'
import { SIGNATURE_HEADER, signWebhookBody } from '../src/triggers/index.js'
import { rapi } from './fixtures/reliability/paths.js'
import { fixture } from './helpers/runtime.js'

const SECRET = 'reliability-fuzz-secret-9f2c'
const SECRET_ENV = 'AGENTPOOL_RELIABILITY_FUZZ_SECRET'
const BODY_LIMIT = 2048
const FUZZ_RUNS = 1000

/** Bad inputs tried in this file, for the README figures. */
const tried = { webhook: 0, slow: 0, handlerModules: 0, state: 0 }

let rt: AgentRuntime
let url: string

beforeAll(async () => {
  process.env[SECRET_ENV] = SECRET
  rt = new AgentRuntime({
    pool: { threads: 2, tasksPerThread: 4 },
    webhook: { bodyLimitBytes: BODY_LIMIT },
    entryPoints: [
      {
        id: 'signed',
        handler: fixture('echo'),
        trigger: { type: 'webhook', path: '/signed', secretEnv: SECRET_ENV },
        maxQueue: 100_000,
      },
      {
        id: 'open',
        handler: fixture('echo'),
        trigger: { type: 'webhook', path: '/open', methods: ['POST', 'PUT'] },
        maxQueue: 100_000,
      },
    ],
  })
  await rt.start()
  url = rt.webhookUrl!
})
afterAll(async () => {
  await rt.stop({ drain: true })
  delete process.env[SECRET_ENV]
  console.log(`bad inputs tried: ${JSON.stringify(tried)}`)
})

interface Fuzzed {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE' | 'PATCH'
  path: string
  contentType: string | undefined
  body: Buffer
  signature: 'none' | 'valid' | 'valid-upper' | 'tampered' | 'other-key' | 'garbage' | 'no-scheme'
  idempotencyKey: string | undefined
}

const jsonText = fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v) ?? 'null')
const fuzzed: fc.Arbitrary<Fuzzed> = fc.record({
  method: fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH'),
  path: fc.oneof(
    fc.constantFrom(
      '/signed',
      '/open',
      '/open?source=fuzz&x=1',
      '/nope',
      '/signed/extra',
      '/healthz',
      '/metrics',
      '/OPEN',
    ),
    fc.stringMatching(/^\/[a-z0-9_-]{0,12}$/),
  ),
  contentType: fc.constantFrom(
    undefined,
    'application/json',
    'application/json; charset=utf-8',
    'application/vnd.ticket+json',
    'text/plain',
    'application/octet-stream',
    'x/unknown',
  ),
  body: fc.oneof(
    jsonText.map((s) => Buffer.from(s)),
    fc.string({ maxLength: 200 }).map((s) => Buffer.from(s)),
    fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b)),
    fc
      .integer({ min: BODY_LIMIT - 2, max: BODY_LIMIT * 3 })
      .map((n) => Buffer.from(`"${'x'.repeat(n - 2)}"`)),
    fc.constant(Buffer.alloc(0)),
  ),
  signature: fc.constantFrom('none', 'valid', 'valid-upper', 'tampered', 'other-key', 'garbage', 'no-scheme'),
  idempotencyKey: fc.option(fc.stringMatching(/^[A-Za-z0-9-]{1,300}$/), { nil: undefined }),
})

function signatureFor(f: Fuzzed): string | undefined {
  const valid = signWebhookBody({ body: f.body, secret: SECRET })
  switch (f.signature) {
    case 'none':
      return undefined
    case 'valid':
      return valid
    case 'valid-upper':
      return `sha256=${valid.slice(7).toUpperCase()}`
    case 'tampered':
      return signWebhookBody({ body: Buffer.concat([f.body, Buffer.from(' ')]), secret: SECRET })
    case 'other-key':
      return signWebhookBody({ body: f.body, secret: 'not-the-secret' })
    case 'garbage':
      return 'sha256=not-hex'
    case 'no-scheme':
      return valid.slice(7)
  }
}

const ROUTES: Record<string, string[]> = {
  '/signed': ['POST'],
  '/open': ['POST', 'PUT'],
  '/healthz': ['GET'],
  '/metrics': ['GET'],
}

/** The webhook contract (docs/architecture.md) as a model: what a fuzzed request must be answered. */
function expectedStatus(f: Fuzzed, body: Buffer): { status: number; code?: string } {
  const path = f.path.split('?')[0]!
  // The body limit is enforced while the body streams in, before routing: an oversized upload is never read.
  if (f.method !== 'GET' && body.length > BODY_LIMIT)
    return { status: 413, code: ErrorCode.WEBHOOK_BODY_TOO_LARGE }
  const methods = ROUTES[path]
  if (methods === undefined) return { status: 404, code: ErrorCode.WEBHOOK_NOT_FOUND }
  if (!methods.includes(f.method)) return { status: 405, code: ErrorCode.WEBHOOK_METHOD_NOT_ALLOWED }
  if (path === '/healthz' || path === '/metrics') return { status: 200 }
  if (path === '/signed' && !['valid', 'valid-upper'].includes(f.signature)) {
    return { status: 401, code: ErrorCode.WEBHOOK_SIGNATURE }
  }
  if (isJson(f.contentType) && body.length > 0 && parseJson(body) === undefined) {
    return { status: 400, code: ErrorCode.WEBHOOK_BAD_REQUEST }
  }
  if (f.idempotencyKey !== undefined && f.idempotencyKey.length > 256) {
    return { status: 400, code: ErrorCode.WEBHOOK_BAD_REQUEST }
  }
  return { status: 202 }
}

function isJson(type: string | undefined): boolean {
  if (type === undefined) return false
  const t = type.split(';')[0]!.trim().toLowerCase()
  return t === 'application/json' || t.endsWith('+json')
}

function parseJson(body: Buffer): { value: unknown } | undefined {
  try {
    return { value: JSON.parse(body.toString('utf8')) }
  } catch {
    return undefined
  }
}

/** The execution input the contract promises for an accepted body. */
function expectedInput(f: Fuzzed, body: Buffer): unknown {
  if (body.length === 0) return null
  return isJson(f.contentType) ? parseJson(body)!.value : body.toString('utf8')
}

let keySeq = 0

async function send(f: Fuzzed): Promise<Response> {
  const headers: Record<string, string> = {}
  if (f.contentType !== undefined) headers['content-type'] = f.contentType
  const signature = signatureFor(f)
  if (signature !== undefined) headers[SIGNATURE_HEADER] = signature
  if (f.idempotencyKey !== undefined) headers['idempotency-key'] = f.idempotencyKey
  return fetch(url + f.path, { method: f.method, headers, ...(f.method === 'GET' ? {} : { body: f.body }) })
}

/** Sends well-formed signed deliveries one after another until `stop` resolves; each must be accepted and run. */
async function wellFormedAlongside(stop: Promise<void>): Promise<{ sent: number; ok: number }> {
  let done = false
  void stop.then(() => {
    done = true
  })
  let sent = 0
  let ok = 0
  while (!done) {
    const body = JSON.stringify({ wellFormed: sent })
    sent++
    const res = await fetch(`${url}/signed`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        [SIGNATURE_HEADER]: signWebhookBody({ body, secret: SECRET }),
      },
      body,
    })
    if (res.status !== 202) continue
    const { executionId } = (await res.json()) as { executionId: string }
    const r = await rt.waitForExecution(executionId)
    const echoed = (r.output as { input?: { wellFormed?: number } } | undefined)?.input
    if (r.status === 'completed' && echoed?.wellFormed === sent - 1) ok++
  }
  return { sent, ok }
}

describe('bad input: webhook', () => {
  it('answers every fuzzed request (method, path, headers, body, signature) with the contract status, while well-formed deliveries alongside all succeed', async () => {
    const before = { ...rt.stats().streams }
    const accepted = { signed: 0, open: 0 }
    let finish!: () => void
    const stop = new Promise<void>((resolve) => {
      finish = resolve
    })
    const alongside = wellFormedAlongside(stop)
    try {
      await fc.assert(
        fc.asyncProperty(fuzzed, async (f) => {
          tried.webhook++
          if (f.idempotencyKey !== undefined) f.idempotencyKey = `${keySeq++}-${f.idempotencyKey}`
          const res = await send(f)
          const want = expectedStatus(f, f.body)
          const text = await res.text()
          expect(res.status, `${f.method} ${f.path} → ${text.slice(0, 200)}`).toBe(want.status)
          if (want.code !== undefined) {
            expect(res.headers.get('content-type')).toMatch(/^application\/json/)
            const parsed = JSON.parse(text) as { error: { code: string; message: string } }
            expect(parsed.error.code).toBe(want.code)
            expect(parsed.error.message.length).toBeGreaterThan(0)
            expect(text).not.toContain(SECRET)
          }
          if (want.status === 202) {
            const { executionId } = JSON.parse(text) as { executionId: string }
            const r = await rt.waitForExecution(executionId)
            expect(r.status).toBe('completed')
            expect((r.output as { input: unknown }).input).toEqual(expectedInput(f, f.body))
            accepted[f.path.startsWith('/signed') ? 'signed' : 'open']++
          }
        }),
        { numRuns: FUZZ_RUNS, seed: 20261125 },
      )
    } finally {
      finish()
    }
    const { sent, ok } = await alongside
    expect(sent).toBeGreaterThan(0)
    expect(ok).toBe(sent)
    const after = rt.stats().streams
    expect(after.signed!.admitted - before.signed!.admitted).toBe(accepted.signed + sent)
    expect(after.open!.admitted - before.open!.admitted).toBe(accepted.open)
  })
})

/** Sends `chunks` as a chunked body, `gapMs` apart; resolves with the status (or the socket error if the server cut it). */
function slowPost(
  path: string,
  chunks: Buffer[],
  gapMs: number,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      url + path,
      { method: 'POST', headers: { 'content-type': 'application/json', ...headers } },
      (res) => {
        let body = ''
        res.setEncoding('utf8')
        res.on('data', (d: string) => {
          body += d
        })
        res.on('end', () => resolve({ status: res.statusCode!, body }))
      },
    )
    req.on('error', reject)
    let i = 0
    const next = (): void => {
      if (req.destroyed) return
      if (i === chunks.length) {
        req.end()
        return
      }
      req.write(chunks[i++])
      setTimeout(next, gapMs)
    }
    next()
  })
}

async function deliverWellFormed(n: number): Promise<void> {
  const body = JSON.stringify({ during: n })
  const res = await fetch(`${url}/signed`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      [SIGNATURE_HEADER]: signWebhookBody({ body, secret: SECRET }),
    },
    body,
  })
  expect(res.status).toBe(202)
  const { executionId } = (await res.json()) as { executionId: string }
  expect((await rt.waitForExecution(executionId)).output).toMatchObject({ input: { during: n } })
}

describe('bad input: slow and broken connections', () => {
  it('accepts a slow signed body sent in pieces, and refuses a slow oversized one with 413', async () => {
    tried.slow += 2
    const body = Buffer.from(JSON.stringify({ slow: true, pad: 'y'.repeat(500) }))
    const step = Math.ceil(body.length / 5)
    const pieces = Array.from({ length: 5 }, (_, k) => body.subarray(k * step, (k + 1) * step))
    const ok = await slowPost('/signed', pieces, 40, {
      [SIGNATURE_HEADER]: signWebhookBody({ body, secret: SECRET }),
    })
    expect(ok.status).toBe(202)
    const { executionId } = JSON.parse(ok.body) as { executionId: string }
    expect((await rt.waitForExecution(executionId)).output).toMatchObject({ input: { slow: true } })

    const big = Array.from({ length: 6 }, () => Buffer.from('z'.repeat(1000)))
    const tooLarge = await slowPost('/open', big, 40).catch((err: Error) => ({
      status: -1,
      body: err.message,
    }))
    // The server answers 413 as soon as the limit is passed; a client still writing may see the cut instead.
    if (tooLarge.status !== -1) {
      expect(tooLarge.status).toBe(413)
      expect(JSON.parse(tooLarge.body).error.code).toBe(ErrorCode.WEBHOOK_BODY_TOO_LARGE)
    }
    await deliverWellFormed(1)
  })

  it('keeps serving while a client stalls mid-body, and answers malformed HTTP with 400', async () => {
    tried.slow += 3
    const stalled = connect(Number(new URL(url).port), '127.0.0.1')
    await new Promise<void>((resolve) => stalled.once('connect', () => resolve()))
    stalled.write(
      'POST /open HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"stall',
    )
    for (let n = 0; n < 5; n++) await deliverWellFormed(n)
    stalled.destroy()

    for (const raw of [
      'GARBAGE\r\n\r\n',
      'POST /open HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n{}',
    ]) {
      const answer = await new Promise<string>((resolve) => {
        const s = connect(Number(new URL(url).port), '127.0.0.1', () => s.end(raw))
        let text = ''
        s.on('data', (d) => {
          text += d.toString()
        })
        s.on('close', () => resolve(text))
        s.on('error', () => resolve(text))
      })
      expect(answer.startsWith('HTTP/1.1 400')).toBe(true)
    }
    await deliverWellFormed(99)
  })
})

describe('bad input: handler outputs', () => {
  it('delivers an output object with an own non-function hasOwnProperty and an inherited enumerable property intact, or refuses it', async () => {
    const odd = new AgentRuntime({ pool: { threads: 1 }, entryPoints: [rapi('odd', 'odd-output')] })
    await odd.start()
    try {
      const r = await odd.triggerAndWait('odd', null)
      if (r.status === 'failed') expect(r.error!.code).toBe(ErrorCode.RECORD_INVALID)
      else expect(r.output).toEqual({ inner: { hasOwnProperty: 1, own: 2 }, after: 'after' })
      // The records that follow in the same frame are delivered too.
      const decided = await odd.triggerAndWait('odd', { decide: true })
      expect(decided.status).toBe('completed')
    } finally {
      await odd.stop({ drain: true })
    }
  })
})

describe('bad input: config', () => {
  it('refuses a state.maxBytes too small for state.maxKeys as a ConfigError naming the field and the value', () => {
    tried.handlerModules++
    const make = () =>
      new AgentRuntime({
        state: { maxBytes: 16 * 1024 * 1024 },
        entryPoints: [{ id: 'e', handler: fixture('echo'), trigger: { type: 'api' } }],
      })
    expect(make).toThrow(ConfigError)
    try {
      make()
    } catch (err) {
      expect((err as ConfigError).issues.map((i) => i.path)).toContain('state.maxBytes')
      expect((err as ConfigError).message).toContain('16777216')
    }
  })
})

describe('bad input: handler modules', () => {
  it('refuses a handler path that does not exist with a ConfigError naming the field', () => {
    tried.handlerModules++
    const make = () => new AgentRuntime({ entryPoints: [rapi('ghost', 'no-such-handler')] })
    expect(make).toThrow(ConfigError)
    try {
      make()
    } catch (err) {
      expect((err as ConfigError).code).toBe(ErrorCode.CONFIG)
      expect((err as ConfigError).issues.map((i) => i.path)).toEqual(['entryPoints[0].handler'])
      expect((err as ConfigError).message).toContain('no-such-handler')
    }
  })

  it('refuses to start with a module that exports no handler, exports a non-function, throws at import or does not parse: AGENTPOOL_HANDLER_MODULE names each, nothing is left running', async () => {
    const broken = ['default-not-function', 'throws-at-import']
    // Written here rather than kept in the repository, where linters and formatters would trip on it.
    const dir = mkdtempSync(join(tmpdir(), 'agentpool-syntax-'))
    const unparsable = join(dir, 'syntax.mjs')
    writeFileSync(unparsable, 'export default async function (input) {\n  return input +\n')
    const mod = new AgentRuntime({
      pool: { threads: 2 },
      entryPoints: [
        { id: 'none', handler: fixture('not-a-handler'), trigger: { type: 'api' } },
        ...broken.map((name) => rapi(name, name)),
        { id: 'syntax', handler: unparsable, trigger: { type: 'api' } },
        { id: 'echo', handler: fixture('echo'), trigger: { type: 'api' } },
      ],
    })
    try {
      tried.handlerModules += 4
      const err = await mod.start().then(
        () => undefined,
        (e: unknown) => e as AgentPoolError,
      )
      expect(err?.code).toBe(ErrorCode.HANDLER_MODULE)
      for (const name of ['not-a-handler', ...broken, 'syntax.mjs']) expect(err?.message).toContain(name)
      expect(err?.message).not.toContain('entry point echo')
      await expect(mod.trigger('echo', 1)).rejects.toMatchObject({ code: ErrorCode.NOT_RUNNING })
    } finally {
      await mod.stop({ drain: true })
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe('bad input: state values and keys', () => {
  it('refuses unstorable values and bad keys with coded errors, keeps the old value, and lets nothing pollute a prototype', async () => {
    const st = new AgentRuntime({
      pool: { threads: 2 },
      state: { maxBytes: 16 * 1024 * 1024, maxKeys: 10_000 },
      entryPoints: [rapi('bad', 'bad-values')],
    })
    await st.start()
    try {
      const main = st.state.createBuffer('main-setup', 'main', 'shared')
      main.write('victim', { ok: 1 }, { scope: 'global' })
      const r = await st.triggerAndWait('bad', null)
      expect(r.status, r.error?.message).toBe('completed')
      const out = r.output as {
        codes: Record<string, string>
        special: [string, unknown][]
        victim: unknown
        victim2: unknown
        pollutedHere: unknown
        readAllProto: boolean
        readAllPolluted: unknown
      }
      tried.state = Object.keys(out.codes).length + out.special.length
      expect(out.codes).toEqual({
        'function value': ErrorCode.STATE_VALUE,
        'symbol value': ErrorCode.STATE_VALUE,
        'nested function': ErrorCode.STATE_VALUE,
        'circular value': ErrorCode.STATE_VALUE,
        'oversized value': ErrorCode.STATE_VALUE,
        'oversized key': ErrorCode.STATE_KEY,
        'empty key': ErrorCode.STATE_KEY,
        'number key': ErrorCode.STATE_KEY,
        'update fn returns a function': ErrorCode.STATE_VALUE,
        'update fn throws': 'uncoded Error: no',
        'transaction writes a symbol after a good write': ErrorCode.STATE_VALUE,
        'async update fn': ErrorCode.INVALID_ARGUMENT,
        'value with an own __proto__': ErrorCode.STATE_VALUE,
      })
      // Nothing of a refused write or transaction landed.
      expect(out.victim).toEqual({ ok: 1 })
      expect(out.victim2).toBeNull()
      expect(main.read('victim', { scope: 'global' })).toEqual({ ok: 1 })
      // Keys named like prototype members are plain keys, on the worker and on the main thread.
      expect(out.special).toEqual(
        ['__proto__', 'constructor', 'prototype', 'hasOwnProperty'].map((key) => [key, { polluted: true }]),
      )
      const all = main.readAll({ scope: 'global' })
      expect(Object.getPrototypeOf(all)).toBe(Object.prototype)
      expect(Object.hasOwn(all, '__proto__')).toBe(true)
      expect(out.pollutedHere).toBeNull()
      expect(out.readAllProto).toBe(true)
      expect(out.readAllPolluted).toBeNull()
      expect(({} as Record<string, unknown>).polluted).toBeUndefined()
      st.state.cleanupExecution('main-setup')
    } finally {
      await st.stop({ drain: true })
    }
  })
})

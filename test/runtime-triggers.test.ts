import { createHmac } from 'node:crypto'
import { afterEach, describe, expect, it } from 'vitest'
import type { AgentRuntime } from '../src/index.js'
import { api, fixture, startRuntime } from './helpers/runtime.js'

const cleanups: (() => Promise<void>)[] = []
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c()
})
const onCleanup = (fn: () => Promise<void>) => cleanups.push(fn)

async function post(rt: AgentRuntime, path: string, body: string, secret: string): Promise<Response> {
  const signature = `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`
  return fetch(`${rt.webhookUrl}${path}`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      'x-agentpool-signature': signature,
      'x-ticket-source': 'zendesk',
    },
    body,
  })
}

/** A runtime with one signed webhook entry point, `tickets` at `/hooks/tickets`, running the echo handler. */
function startWebhookRuntime(): Promise<AgentRuntime> {
  process.env.AGENTPOOL_TEST_SECRET = 'webhook-secret-for-tests'
  return startRuntime(
    {
      entryPoints: [
        {
          id: 'tickets',
          handler: fixture('echo'),
          trigger: { type: 'webhook', path: '/hooks/tickets', secretEnv: 'AGENTPOOL_TEST_SECRET' },
        },
      ],
    },
    onCleanup,
  )
}

describe('triggers through the runtime', () => {
  it('runs a signed webhook delivery on a pool thread with the parsed body and the request meta', async () => {
    const rt = await startWebhookRuntime()
    expect(rt.webhookUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/)
    const res = await post(
      rt,
      '/hooks/tickets?source=test',
      JSON.stringify({ ticketId: 'T-9' }),
      'webhook-secret-for-tests',
    )
    expect(res.status).toBe(202)
    const { executionId } = (await res.json()) as { executionId: string }
    const r = await rt.waitForExecution(executionId)
    expect(r.status).toBe('completed')
    const out = r.output as {
      input: unknown
      meta: { trigger: string; path: string; query: unknown; headers: Record<string, string> }
    }
    expect(out.input).toEqual({ ticketId: 'T-9' })
    expect(out.meta).toMatchObject({ trigger: 'webhook', path: '/hooks/tickets', query: { source: 'test' } })
    expect(out.meta.headers['x-ticket-source']).toBe('zendesk')
    expect(out.meta.headers['x-agentpool-signature']).toBeUndefined()
    const unsigned = await fetch(`${rt.webhookUrl}/hooks/tickets`, { method: 'POST', body: '{}' })
    expect(unsigned.status).toBe(401)
  })

  it("publishes a webhook's webhook_received and trigger_fired before its execution_started", async () => {
    const rt = await startWebhookRuntime()
    const ids: string[] = []
    for (let i = 0; i < 5; i++) {
      const res = await post(rt, '/hooks/tickets', JSON.stringify({ i }), 'webhook-secret-for-tests')
      ids.push(((await res.json()) as { executionId: string }).executionId)
    }
    for (const id of ids) {
      await rt.waitForExecution(id)
      const types = rt.events.history({ executionId: id }).map((e) => e.type)
      expect(types.slice(0, 3)).toEqual(['webhook_received', 'trigger_fired', 'execution_started'])
    }
  })

  it('fires an interval timer repeatedly', async () => {
    const rt = await startRuntime(
      {
        entryPoints: [{ id: 'sweep', handler: fixture('echo'), trigger: { type: 'timer', intervalMs: 40 } }],
      },
      onCleanup,
    )
    const seen: string[] = []
    for (let i = 0; i < 3; i++) {
      const e = await rt.events.waitFor({
        types: ['execution_completed'],
        streamId: 'sweep',
        timeoutMs: 10_000,
      })
      seen.push(e.executionId!)
    }
    expect(new Set(seen).size).toBe(3)
    expect(rt.timerStats().sweep!.fired).toBeGreaterThanOrEqual(3)
  })

  it('starts an event-triggered execution for a handler event, carrying its correlation id', async () => {
    const rt = await startRuntime(
      {
        entryPoints: [
          api('source', 'emit'),
          { id: 'listener', handler: fixture('echo'), trigger: { type: 'event', eventTypes: ['ping'] } },
        ],
      },
      onCleanup,
    )
    const started = rt.events.waitFor({
      types: ['execution_completed'],
      streamId: 'listener',
      timeoutMs: 10_000,
    })
    await rt.triggerAndWait('source', {}, { correlationId: 'ticket-42' })
    const done = await started
    const r = await rt.waitForExecution(done.executionId!)
    const out = r.output as {
      input: { type: string; streamId: string }
      correlationId: string
      meta: { trigger: string }
    }
    expect(out.input).toMatchObject({ type: 'ping', streamId: 'source' })
    expect(out.correlationId).toBe('ticket-42')
    expect(out.meta.trigger).toBe('event')
  })

  it('stops an event cascade at the documented depth with a clear event', async () => {
    const rt = await startRuntime(
      {
        entryPoints: [
          { id: 'pinger', handler: fixture('relay'), trigger: { type: 'event', eventTypes: ['pong'] } },
          { id: 'ponger', handler: fixture('relay'), trigger: { type: 'event', eventTypes: ['ping'] } },
          api('kick', 'emit'),
        ],
      },
      onCleanup,
    )
    const refused = rt.events.waitFor({ types: ['trigger_refused'], timeoutMs: 20_000 })
    await rt.trigger('kick', {})
    const e = await refused
    expect(JSON.stringify(e.data)).toContain('AGENTPOOL_CASCADE_DEPTH')
    const { pinger, ponger } = rt.stats().streams
    expect(pinger!.admitted + ponger!.admitted).toBe(8)
  })
})

import { afterEach, describe, expect, it } from 'vitest'
import { ErrorCode } from '../src/errors.js'
import { MAX_EVENT_DEPTH, type TriggerRefusedData, type Triggers } from '../src/triggers/index.js'
import { type FakeHost, startOnFakeHost } from './fixtures/triggers/fake-host.js'

const running: Triggers[] = []
afterEach(async () => {
  for (const t of running.splice(0)) await t.stop()
})

const start = (triggers: Record<string, Record<string, unknown>>) => startOnFakeHost(triggers, running)

/** An "outside" execution of `streamId` (depth 0) emitting `type`. */
async function emitFromOutside(host: FakeHost, streamId: string, type: string, data: unknown = {}) {
  const executionId = await host.trigger(streamId, null)
  return host.events.publish({ type, streamId, executionId, correlationId: `corr-${executionId}`, data })
}

describe('event triggers', () => {
  it('start one execution per matching event, with the event as input and its correlation id carried', async () => {
    const { host } = await start({
      source: { type: 'api' },
      delegate: { type: 'event', eventTypes: ['ticket_escalated', 'ticket_reopened'] },
    })
    const fired = host.events.waitFor({ types: ['trigger_fired'], streamId: 'delegate' })
    const event = await emitFromOutside(host, 'source', 'ticket_escalated', { ticket: 7 })
    const call = host.callsFor('delegate')[0]!
    expect(call.input).toEqual(event)
    expect(call.opts).toEqual({
      correlationId: event.correlationId,
      depth: 1,
      meta: { trigger: 'event', eventType: 'ticket_escalated', eventId: event.id },
    })
    const e = await fired
    expect(e).toMatchObject({ executionId: call.executionId, correlationId: event.correlationId })
    expect(e.data).toEqual({ entryPointId: 'delegate', triggerType: 'event' })
    await emitFromOutside(host, 'source', 'ticket_reopened')
    await emitFromOutside(host, 'source', 'ticket_closed')
    expect(host.callsFor('delegate').map((c) => (c.input as { type: string }).type)).toEqual([
      'ticket_escalated',
      'ticket_reopened',
    ])
  })

  it('take events only from the named stream when streamId is set', async () => {
    const { host } = await start({
      a: { type: 'api' },
      b: { type: 'api' },
      fromA: { type: 'event', eventTypes: ['done'], streamId: 'a' },
    })
    await emitFromOutside(host, 'b', 'done')
    await emitFromOutside(host, 'a', 'done')
    expect(host.callsFor('fromA').map((c) => (c.input as { streamId: string }).streamId)).toEqual(['a'])
  })

  it("skip the entry point's own events by default, and take them with excludeOwn: false", async () => {
    const { host } = await start({
      shy: { type: 'event', eventTypes: ['note'] },
      self: { type: 'event', eventTypes: ['note'], excludeOwn: false, streamId: 'self' },
    })
    await emitFromOutside(host, 'shy', 'note')
    expect(host.callsFor('shy')).toHaveLength(1) // only the outside execution itself
    await emitFromOutside(host, 'self', 'note')
    expect(host.callsFor('self').map((c) => c.opts.depth ?? 0)).toEqual([0, 1])
  })

  it(`stop a cascade at depth ${MAX_EVENT_DEPTH} with a trigger_refused event instead of running forever`, async () => {
    const { host } = await start({
      origin: { type: 'api' },
      ping: { type: 'event', eventTypes: ['ping'], excludeOwn: false },
    })
    // Each triggered execution "emits" ping again, as a handler calling ctx.emit would.
    host.events.subscribe({
      types: ['trigger_fired'],
      streamId: 'ping',
      handler: (e) => {
        host.events.publish({ type: 'ping', streamId: 'ping', executionId: e.executionId, data: {} })
      },
    })
    const refused = host.events.waitFor({ types: ['trigger_refused'], streamId: 'ping' })
    await emitFromOutside(host, 'origin', 'ping')
    const e = await refused
    const data = e.data as TriggerRefusedData
    expect(host.callsFor('ping').map((c) => c.opts.depth)).toEqual(
      Array.from({ length: MAX_EVENT_DEPTH }, (_, i) => i + 1),
    )
    expect(data).toMatchObject({
      entryPointId: 'ping',
      triggerType: 'event',
      reason: 'cascade_depth',
      depth: MAX_EVENT_DEPTH + 1,
      cause: { type: 'ping', streamId: 'ping', executionId: host.callsFor('ping').at(-1)!.executionId },
      error: { code: ErrorCode.CASCADE_DEPTH },
    })
    expect(data.error!.message).toContain(
      `cascade depth ${MAX_EVENT_DEPTH + 1} exceeds the limit of ${MAX_EVENT_DEPTH}`,
    )
  })

  it('stop a cycle between two entry points the same way', async () => {
    const { host } = await start({
      left: { type: 'event', eventTypes: ['to_left'] },
      right: { type: 'event', eventTypes: ['to_right'] },
    })
    host.events.subscribe({
      types: ['trigger_fired'],
      handler: (e) => {
        const next = e.streamId === 'left' ? 'to_right' : 'to_left'
        host.events.publish({ type: next, streamId: e.streamId, executionId: e.executionId, data: {} })
      },
    })
    const refused = host.events.waitFor({ types: ['trigger_refused'] })
    await emitFromOutside(host, 'right', 'to_left')
    expect((await refused).data).toMatchObject({ reason: 'cascade_depth', depth: MAX_EVENT_DEPTH + 1 })
    const depths = host.calls.filter((c) => c.opts.depth !== undefined).map((c) => c.opts.depth)
    expect(depths).toEqual(Array.from({ length: MAX_EVENT_DEPTH }, (_, i) => i + 1))
  })

  it("end a loop of entry points reacting to each other's refusals at the same depth limit", async () => {
    const { host } = await start({
      src: { type: 'api' },
      a: { type: 'event', eventTypes: ['go', 'trigger_refused'], excludeOwn: true },
      b: { type: 'event', eventTypes: ['trigger_refused'], streamId: 'a' },
    })
    host.full.add('a')
    host.full.add('b')
    const end = new Promise<TriggerRefusedData>((resolve) => {
      host.events.subscribe({
        types: ['trigger_refused'],
        handler: (e) => {
          const data = e.data as TriggerRefusedData
          if (data.reason === 'cascade_depth') resolve(data)
        },
      })
    })
    await emitFromOutside(host, 'src', 'go')
    const last = await end
    // Let every pending promise settle (one macrotask turn): nothing may follow the final refusal.
    await new Promise((resolve) => setImmediate(resolve))
    expect(last.depth).toBe(MAX_EVENT_DEPTH + 1)
    const refusals = host.events
      .history({ types: ['trigger_refused'] })
      .map((e) => (e.data as TriggerRefusedData).depth)
    expect(refusals).toEqual(Array.from({ length: MAX_EVENT_DEPTH + 1 }, (_, i) => i + 1))
  })

  it('report a trigger the runtime refuses as trigger_refused with its error', async () => {
    const { host } = await start({ src: { type: 'api' }, sink: { type: 'event', eventTypes: ['x'] } })
    host.full.add('sink')
    const refused = host.events.waitFor({ types: ['trigger_refused'], streamId: 'sink' })
    const event = await emitFromOutside(host, 'src', 'x')
    const e = await refused
    expect(e.correlationId).toBe(event.correlationId)
    expect(e.data).toMatchObject({ reason: 'refused', depth: 1, error: { code: ErrorCode.QUEUE_FULL } })
  })

  it('unsubscribe on stop', async () => {
    const { host, t } = await start({ src: { type: 'api' }, sink: { type: 'event', eventTypes: ['x'] } })
    const before = host.events.subscriberCount
    await t.stop()
    expect(host.events.subscriberCount).toBe(before - 1)
    await emitFromOutside(host, 'src', 'x')
    expect(host.callsFor('sink')).toHaveLength(0)
  })
})

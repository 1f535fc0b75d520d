import { afterEach, describe, expect, it, vi } from 'vitest'
import { AgentPoolError, ErrorCode, InvalidArgumentError } from '../src/errors.js'
import { type AgentEvent, EventBus } from '../src/events/index.js'

function collect(
  bus: EventBus,
  filter: Parameters<EventBus['subscribe']>[0] extends infer O ? Omit<O & object, 'handler'> : never,
) {
  const seen: AgentEvent[] = []
  const id = bus.subscribe({ ...filter, handler: (e) => void seen.push(e) })
  return { seen, id }
}

describe('EventBus subscriptions', () => {
  it('delivers each event only to subscribers whose type, stream and execution filters all match', () => {
    const bus = new EventBus()
    const all = collect(bus, {})
    const byType = collect(bus, { types: ['ticket_classified'] })
    const byStream = collect(bus, { streamId: 'webhook' })
    const byExecution = collect(bus, { executionId: 'e2' })
    const combined = collect(bus, { types: ['ticket_classified'], streamId: 'api', executionId: 'e2' })

    bus.publish({ type: 'ticket_classified', streamId: 'webhook', executionId: 'e1', data: 1 })
    bus.publish({ type: 'ticket_classified', streamId: 'api', executionId: 'e2', data: 2 })
    bus.publish({ type: 'other', streamId: 'api', executionId: 'e2', data: 3 })
    bus.publish({ type: 'stream_started', streamId: 'webhook', data: { entryPointId: 'webhook' } })

    expect(all.seen.map((e) => e.data)).toEqual([1, 2, 3, { entryPointId: 'webhook' }])
    expect(byType.seen.map((e) => e.data)).toEqual([1, 2])
    expect(byStream.seen.map((e) => e.data)).toEqual([1, { entryPointId: 'webhook' }])
    expect(byExecution.seen.map((e) => e.data)).toEqual([2, 3])
    expect(combined.seen.map((e) => e.data)).toEqual([2])
  })

  it('stamps every event with an increasing id and a timestamp, and omits absent optional fields', () => {
    const bus = new EventBus()
    const a = bus.publish({ type: 'x', streamId: 's', data: null })
    const b = bus.publish({ type: 'x', streamId: 's', data: null, timestamp: 42 })
    expect(Number(b.id)).toBeGreaterThan(Number(a.id))
    expect(a.timestamp).toBeGreaterThan(0)
    expect(b.timestamp).toBe(42)
    expect('executionId' in a).toBe(false)
    expect('correlationId' in a).toBe(false)
  })

  it('gives events routed from worker records the same ids, order and fields whether or not anyone listens', () => {
    // publishRecord leaves the id string to history() while nobody is subscribed; a subscriber sees it at once.
    const quiet = new EventBus({ historySize: 4 })
    const heard = new EventBus({ historySize: 4 })
    const seen = collect(heard, { types: ['ticket_classified'] })
    for (const bus of [quiet, heard]) {
      bus.publish({ type: 'first', streamId: 's', data: 0, timestamp: 1000 })
      for (let i = 1; i <= 5; i++)
        bus.publishRecord('ticket_classified', 's', `e${i}`, `c${i}`, { i }, 1000 + i)
      bus.publish({ type: 'last', streamId: 's', data: 6, timestamp: 1006 })
    }
    const shape = (e: AgentEvent) => ({ ...e })
    // Ring of 4: the last three records and the closing event, ids counting on from the first event's.
    expect(quiet.history().map(shape)).toEqual(heard.history().map(shape))
    expect(quiet.history().map((e) => Number(e.id))).toEqual([4, 5, 6, 7])
    expect(quiet.history()[0]).toEqual({
      id: '4',
      type: 'ticket_classified',
      streamId: 's',
      executionId: 'e3',
      correlationId: 'c3',
      data: { i: 3 },
      timestamp: 1003,
    })
    expect(seen.seen.map((e) => e.id)).toEqual(['2', '3', '4', '5', '6'])
    // A history read hands out the same object each time.
    expect(quiet.history({ limit: 1, types: ['ticket_classified'] })[0]).toBe(
      quiet.history({ types: ['ticket_classified'] }).at(-1),
    )
  })

  it('stops delivering after unsubscribe and says whether the subscription existed', () => {
    const bus = new EventBus()
    const sub = collect(bus, {})
    bus.publish({ type: 'x', streamId: 's', data: 1 })
    expect(bus.unsubscribe(sub.id)).toBe(true)
    expect(bus.unsubscribe(sub.id)).toBe(false)
    bus.publish({ type: 'x', streamId: 's', data: 2 })
    expect(sub.seen.map((e) => e.data)).toEqual([1])
    expect(bus.subscriberCount).toBe(0)
  })

  it('delivers events published from inside a subscriber after the current event, in the same order to everyone', () => {
    const bus = new EventBus()
    const orders: string[][] = [[], []]
    bus.subscribe({
      handler: (e) => {
        orders[0]!.push(e.type)
        if (e.type === 'first') bus.publish({ type: 'nested', streamId: 's', data: null })
      },
    })
    bus.subscribe({ handler: (e) => void orders[1]!.push(e.type) })
    bus.publish({ type: 'first', streamId: 's', data: null })
    bus.publish({ type: 'second', streamId: 's', data: null })
    expect(orders[0]).toEqual(['first', 'nested', 'second'])
    expect(orders[1]).toEqual(['first', 'nested', 'second'])
    expect(bus.history().map((e) => e.type)).toEqual(['first', 'nested', 'second'])
  })

  it('does not deliver the current event to a subscription removed by an earlier subscriber', () => {
    const bus = new EventBus()
    let second = ''
    bus.subscribe({ handler: () => void bus.unsubscribe(second) })
    const late = collect(bus, {})
    second = late.id
    bus.publish({ type: 'x', streamId: 's', data: null })
    expect(late.seen).toEqual([])
  })

  it('narrows data by type for built-in events', () => {
    const bus = new EventBus()
    let progress = -1
    bus.subscribe({
      types: ['goal_progress', 'goal_achieved'],
      handler: (e) => {
        if (e.type === 'goal_progress') progress = e.data.overallProgress
      },
    })
    bus.publish({
      type: 'goal_progress',
      streamId: 's',
      data: { goalId: 'g', overallProgress: 0.5, recommendation: 'continue', criteria: {} },
    })
    expect(progress).toBe(0.5)
  })

  it('refuses an event without a type or stream, and a subscription without a handler', () => {
    const bus = new EventBus()
    expect(() => bus.publish({ type: '', streamId: 's', data: null })).toThrow(InvalidArgumentError)
    expect(() => bus.publish({ type: 'x', streamId: undefined as never, data: null })).toThrow(/streamId/)
    expect(() => bus.subscribe({ handler: 'nope' as never })).toThrow(/handler function/)
    expect(() => new EventBus({ historySize: -1 })).toThrow(/historySize/)
  })
})

describe('EventBus failing subscribers', () => {
  afterEach(() => vi.restoreAllMocks())

  it('keeps delivering to the others when a subscriber throws, and reports the error as a subscriber_error event', () => {
    const bus = new EventBus()
    const failing = bus.subscribe({
      types: ['x'],
      handler: () => {
        throw new InvalidArgumentError('boom')
      },
    })
    const after = collect(bus, { types: ['x'] })
    const errors = collect(bus, { types: ['subscriber_error'] })

    const published = bus.publish({ type: 'x', streamId: 's', executionId: 'e', data: 1 })
    bus.publish({ type: 'x', streamId: 's', data: 2 })

    expect(after.seen.map((e) => e.data)).toEqual([1, 2])
    expect(errors.seen).toHaveLength(2)
    const first = errors.seen[0] as AgentEvent<'subscriber_error'>
    expect(first.streamId).toBe('s')
    expect(first.executionId).toBe('e')
    expect(first.data.subscriptionId).toBe(failing)
    expect(first.data.event).toEqual({ id: published.id, type: 'x' })
    expect(first.data.error).toMatchObject({
      name: 'InvalidArgumentError',
      code: ErrorCode.INVALID_ARGUMENT,
      message: 'boom',
    })
  })

  it('reports a rejected async subscriber without waiting for slow ones', async () => {
    const bus = new EventBus()
    let releaseSlow!: () => void
    const slowDone = new Promise<void>((r) => {
      releaseSlow = r
    })
    bus.subscribe({ types: ['x'], handler: () => slowDone })
    bus.subscribe({
      types: ['x'],
      handler: async () => {
        throw new Error('async boom')
      },
    })
    const reported = bus.waitFor({ types: ['subscriber_error'], timeoutMs: 5000 })
    const after = collect(bus, { types: ['x'] })
    bus.publish({ type: 'x', streamId: 's', data: 1 })
    expect(after.seen).toHaveLength(1)
    const event = await reported
    expect(event.data.error.message).toBe('async boom')
    releaseSlow()
  })

  it('does not recurse when a subscriber also throws on subscriber_error: that failure becomes a process warning', () => {
    const bus = new EventBus()
    const warn = vi.spyOn(process, 'emitWarning').mockImplementation(() => {})
    let calls = 0
    bus.subscribe({
      handler: () => {
        calls++
        throw new Error('always')
      },
    })
    bus.publish({ type: 'x', streamId: 's', data: null })
    expect(calls).toBe(2)
    expect(bus.history().map((e) => e.type)).toEqual(['x', 'subscriber_error'])
    expect(warn).toHaveBeenCalledTimes(1)
    expect(String(warn.mock.calls[0]![0])).toMatch(/failed while handling a subscriber_error: always/)
  })
})

describe('EventBus history', () => {
  it('keeps only the most recent historySize events, oldest first', () => {
    const bus = new EventBus({ historySize: 5 })
    for (let i = 0; i < 12; i++) bus.publish({ type: 'n', streamId: 's', data: i })
    expect(bus.history().map((e) => e.data)).toEqual([7, 8, 9, 10, 11])
  })

  it('filters by type, stream and execution and returns the last `limit` matches', () => {
    const bus = new EventBus({ historySize: 100 })
    for (let i = 0; i < 30; i++) {
      bus.publish({
        type: i % 2 === 0 ? 'even' : 'odd',
        streamId: i % 3 === 0 ? 'a' : 'b',
        executionId: `e${i % 5}`,
        data: i,
      })
    }
    expect(bus.history({ types: ['even'], limit: 3 }).map((e) => e.data)).toEqual([24, 26, 28])
    expect(bus.history({ streamId: 'a' }).map((e) => e.data)).toEqual([0, 3, 6, 9, 12, 15, 18, 21, 24, 27])
    expect(bus.history({ executionId: 'e1', types: ['odd'] }).map((e) => e.data)).toEqual([1, 11, 21])
    expect(bus.history({ limit: 0 })).toEqual([])
  })

  it('keeps nothing with historySize 0 but still delivers', () => {
    const bus = new EventBus({ historySize: 0 })
    const sub = collect(bus, {})
    bus.publish({ type: 'x', streamId: 's', data: null })
    expect(bus.history()).toEqual([])
    expect(sub.seen).toHaveLength(1)
  })
})

describe('EventBus waitFor', () => {
  it('resolves with the next matching event and then unsubscribes', async () => {
    const bus = new EventBus()
    const waiting = bus.waitFor({ types: ['done'], streamId: 'a', executionId: 'e1' })
    bus.publish({ type: 'done', streamId: 'b', executionId: 'e1', data: 'wrong stream' })
    bus.publish({ type: 'done', streamId: 'a', executionId: 'e2', data: 'wrong execution' })
    bus.publish({ type: 'other', streamId: 'a', executionId: 'e1', data: 'wrong type' })
    bus.publish({ type: 'done', streamId: 'a', executionId: 'e1', data: 'this one' })
    expect((await waiting).data).toBe('this one')
    expect(bus.subscriberCount).toBe(0)
  })

  it('rejects with AGENTPOOL_TIMEOUT when nothing matches in time, and leaves no subscription behind', async () => {
    const bus = new EventBus()
    const waiting = bus.waitFor({ types: ['never'], timeoutMs: 30 })
    bus.publish({ type: 'other', streamId: 's', data: null })
    const err = await waiting.catch((e: unknown) => e)
    expect(err).toBeInstanceOf(AgentPoolError)
    expect(err).toMatchObject({ code: ErrorCode.TIMEOUT, details: { types: ['never'], timeoutMs: 30 } })
    expect((err as Error).message).toMatch(/waitFor\(never\) saw no matching event within 30 ms/)
    expect(bus.subscriberCount).toBe(0)
  })

  it('refuses a waitFor without types or with a bad timeout', () => {
    const bus = new EventBus()
    expect(() => bus.waitFor({ types: [] })).toThrow(/non-empty types/)
    expect(() => bus.waitFor({ types: ['x'], timeoutMs: -1 })).toThrow(/timeoutMs/)
  })
})

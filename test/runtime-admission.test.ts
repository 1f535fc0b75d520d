import { afterEach, describe, expect, it } from 'vitest'
import {
  AgentRuntime,
  ErrorCode,
  NotRunningError,
  QueueFullError,
  UnknownEntryPointError,
} from '../src/index.js'
import { api, startRuntime } from './helpers/runtime.js'

const cleanups: (() => Promise<void>)[] = []
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c()
})
const onCleanup = (fn: () => Promise<void>) => cleanups.push(fn)

describe('admission', () => {
  it('runs a handler on a pool thread and returns its output with the execution ids', async () => {
    const rt = await startRuntime({ entryPoints: [api('tickets', 'echo')] }, onCleanup)
    const r = await rt.triggerAndWait('tickets', { ticketId: 'T-1' }, { correlationId: 'corr-1' })
    expect(r.status).toBe('completed')
    expect(r.attempts).toBe(1)
    expect(r.correlationId).toBe('corr-1')
    expect(r.output).toMatchObject({
      input: { ticketId: 'T-1' },
      executionId: r.executionId,
      streamId: 'tickets',
      attempt: 1,
      correlationId: 'corr-1',
      meta: { trigger: 'api' },
    })
    expect(r.completedAt).toBeGreaterThanOrEqual(r.startedAt)
    expect(r.durationMs).toBe(r.completedAt - r.startedAt)
    expect(await rt.waitForExecution(r.executionId)).toEqual(r)
  })

  it('never runs more than maxConcurrent executions of a stream at once', async () => {
    const rt = await startRuntime({ entryPoints: [api('slow', 'sleep', { maxConcurrent: 2 })] }, onCleanup)
    let running = 0
    let peak = 0
    rt.events.subscribe({
      types: ['execution_started', 'execution_completed'],
      handler: (e) => {
        running += e.type === 'execution_started' ? 1 : -1
        peak = Math.max(peak, running)
      },
    })
    const results = await Promise.all(Array.from({ length: 8 }, () => rt.triggerAndWait('slow', { ms: 30 })))
    expect(results.every((r) => r.status === 'completed')).toBe(true)
    expect(peak).toBe(2)
  })

  it('refuses a trigger past maxQueue with AGENTPOOL_QUEUE_FULL and still finishes everything admitted', async () => {
    const rt = await startRuntime(
      { entryPoints: [api('slow', 'sleep', { maxConcurrent: 1, maxQueue: 2 })] },
      onCleanup,
    )
    const ids = [await rt.trigger('slow', { ms: 150, value: 1 })]
    ids.push(await rt.trigger('slow', { ms: 1, value: 2 }))
    ids.push(await rt.trigger('slow', { ms: 1, value: 3 }))
    const refused = await rt.trigger('slow', { ms: 1, value: 4 }).catch((e: unknown) => e)
    expect(refused).toBeInstanceOf(QueueFullError)
    expect((refused as QueueFullError).code).toBe(ErrorCode.QUEUE_FULL)
    const results = await Promise.all(ids.map((id) => rt.waitForExecution(id)))
    expect(results.map((r) => r.output)).toEqual([1, 2, 3])
    expect(rt.stats().streams.slow).toMatchObject({
      admitted: 3,
      completed: 3,
      rejected: 1,
      queued: 0,
      running: 0,
    })
  })

  it('starts queued executions by priority, first-come among equals', async () => {
    const rt = await startRuntime({ entryPoints: [api('one', 'sleep', { maxConcurrent: 1 })] }, onCleanup)
    const started: string[] = []
    const names = new Map<string, string>()
    rt.events.subscribe({
      types: ['execution_started'],
      handler: (e) => {
        started.push(e.executionId!)
      },
    })
    const blocker = await rt.trigger('one', { ms: 100 })
    names.set(blocker, 'blocker')
    for (const [name, priority] of [
      ['low', 1],
      ['highA', 5],
      ['mid', 3],
      ['highB', 5],
    ] as const) {
      names.set(await rt.trigger('one', { ms: 1 }, { priority }), name)
    }
    await Promise.all([...names.keys()].map((id) => rt.waitForExecution(id)))
    expect(started.map((id) => names.get(id))).toEqual(['blocker', 'highA', 'highB', 'mid', 'low'])
  })

  it('keeps streams independent: a full, slow stream does not delay another', async () => {
    const rt = await startRuntime(
      {
        entryPoints: [api('slow', 'sleep', { maxConcurrent: 1, maxQueue: 5 }), api('fast', 'echo')],
      },
      onCleanup,
    )
    for (let i = 0; i < 6; i++) await rt.trigger('slow', { ms: 200 })
    await expect(rt.trigger('slow', { ms: 1 })).rejects.toBeInstanceOf(QueueFullError)
    const fast = await rt.triggerAndWait('fast', 'hello')
    expect(fast.status).toBe('completed')
    expect(rt.stats().streams.slow!.queued).toBeGreaterThan(0)
  })

  it('returns the first execution id for a repeated idempotency key and starts nothing', async () => {
    const rt = await startRuntime({ entryPoints: [api('tickets', 'echo')] }, onCleanup)
    const first = await rt.trigger('tickets', { n: 1 }, { idempotencyKey: 'delivery-7' })
    const second = await rt.trigger('tickets', { n: 2 }, { idempotencyKey: 'delivery-7' })
    expect(second).toBe(first)
    const other = await rt.trigger('tickets', { n: 3 }, { idempotencyKey: 'delivery-8' })
    expect(other).not.toBe(first)
    await rt.waitForExecution(first)
    await rt.waitForExecution(other)
    expect(rt.stats().streams.tickets!.completed).toBe(2)
  })

  it('refuses unknown entry points and triggers before start with named errors', async () => {
    const rt = new AgentRuntime({ pool: { threads: 1 }, entryPoints: [api('tickets', 'echo')] })
    await expect(rt.trigger('tickets', {})).rejects.toBeInstanceOf(NotRunningError)
    await rt.start()
    onCleanup(() => rt.stop())
    const err = await rt.trigger('nope', {}).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(UnknownEntryPointError)
    expect((err as Error).message).toContain('"tickets"')
    await expect(rt.trigger('tickets', {}, { timeoutMs: -1 })).rejects.toMatchObject({
      code: ErrorCode.INVALID_ARGUMENT,
    })
  })

  it('carries many executions through batched pool messages, each with its own result', async () => {
    const rt = await startRuntime(
      { entryPoints: [api('tickets', 'echo', { maxConcurrent: 1000, maxQueue: 5000 })] },
      onCleanup,
    )
    const results = await Promise.all(Array.from({ length: 2000 }, (_, i) => rt.triggerAndWait('tickets', i)))
    expect(results.map((r) => (r.output as { input: number }).input)).toEqual(
      Array.from({ length: 2000 }, (_, i) => i),
    )
    expect(new Set(results.map((r) => r.executionId)).size).toBe(2000)
  })
})

import { afterEach, describe, expect, it } from 'vitest'
import { ErrorCode } from '../src/index.js'
import { api, startRuntime } from './helpers/runtime.js'

const cleanups: (() => Promise<void>)[] = []
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c()
})
const onCleanup = (fn: () => Promise<void>) => cleanups.push(fn)

describe('failures, timeouts and cancellation', () => {
  it('reports a thrown error as failed with AGENTPOOL_HANDLER_FAILED and the handler stack', async () => {
    const rt = await startRuntime({ entryPoints: [api('parse', 'fail')] }, onCleanup)
    const r = await rt.triggerAndWait('parse', {})
    expect(r.status).toBe('failed')
    expect(r.error).toMatchObject({
      code: ErrorCode.HANDLER_FAILED,
      message: 'attempt 1 could not parse the ticket',
    })
    expect(r.error!.name).toBe('TicketParseError')
    expect(r.error!.stack).toContain('fail.ts')
  })

  it('retries a failed attempt up to maxRetries and says how many attempts ran', async () => {
    const rt = await startRuntime(
      { entryPoints: [api('twice', 'fail', { maxRetries: 2 }), api('never', 'fail', { maxRetries: 1 })] },
      onCleanup,
    )
    const retried: number[] = []
    rt.events.subscribe({
      types: ['execution_retried'],
      handler: (e) => {
        retried.push(e.data.attempt)
      },
    })
    const ok = await rt.triggerAndWait('twice', { failAttempts: 2 })
    expect(ok).toMatchObject({ status: 'completed', attempts: 3, output: { attempt: 3 } })
    const bad = await rt.triggerAndWait('never', {})
    expect(bad).toMatchObject({ status: 'failed', attempts: 2 })
    expect(bad.error!.message).toBe('attempt 2 could not parse the ticket')
    expect(retried).toEqual([1, 2, 1])
  })

  it('times out a busy-looping handler, replaces its thread, and keeps serving', async () => {
    const rt = await startRuntime(
      { entryPoints: [api('spin', 'busy', { timeoutMs: 200, maxRetries: 3 }), api('echo', 'echo')] },
      onCleanup,
    )
    const others = Array.from({ length: 20 }, (_, i) => rt.triggerAndWait('echo', i))
    const r = await rt.triggerAndWait('spin', {})
    expect(r.status).toBe('timed_out')
    expect(r.attempts).toBe(1)
    expect(r.error!.code).toBe(ErrorCode.TIMEOUT)
    expect((await Promise.all(others)).every((x) => x.status === 'completed')).toBe(true)
    const after = await Promise.all(Array.from({ length: 20 }, (_, i) => rt.triggerAndWait('echo', i)))
    expect(after.every((x) => x.status === 'completed')).toBe(true)
    await expect.poll(() => rt.stats().pool.threadsReplaced, { timeout: 10_000 }).toBeGreaterThanOrEqual(1)
  })

  it('aborts ctx.signal of a timed-out handler that listens to it', async () => {
    const rt = await startRuntime(
      // The same handler without the short timeout, for the execution after: under a loaded machine a
      // 1 ms sleep can take longer than 100 ms from its dispatch.
      { entryPoints: [api('sleepy', 'sleep', { timeoutMs: 100 }), api('after', 'sleep')] },
      onCleanup,
    )
    const r = await rt.triggerAndWait('sleepy', { ms: 60_000 })
    expect(r.status).toBe('timed_out')
    const ok = await rt.triggerAndWait('after', { ms: 1, value: 'fine' })
    expect(ok).toMatchObject({ status: 'completed', output: 'fine' })
    expect(rt.stats().pool.threadsReplaced).toBe(0)
  })

  it('cancels a queued and a running execution through opts.signal', async () => {
    const rt = await startRuntime({ entryPoints: [api('one', 'sleep', { maxConcurrent: 1 })] }, onCleanup)
    const running = new AbortController()
    const queued = new AbortController()
    const a = rt.triggerAndWait('one', { ms: 60_000 }, { signal: running.signal })
    const b = rt.triggerAndWait('one', { ms: 60_000 }, { signal: queued.signal })
    await rt.events.waitFor({ types: ['execution_started'], timeoutMs: 10_000 })
    queued.abort()
    running.abort()
    const [ra, rb] = await Promise.all([a, b])
    expect(ra.status).toBe('cancelled')
    expect(rb.status).toBe('cancelled')
    expect(rb.error!.code).toBe(ErrorCode.CANCELLED)
    expect((await rt.triggerAndWait('one', { ms: 1, value: 'next' })).output).toBe('next')
    expect(rt.stats().streams.one).toMatchObject({ cancelled: 2, completed: 1 })
  })

  it.each(['exit', 'uncaught'] as const)(
    'fails an execution whose thread dies (%s) with AGENTPOOL_WORKER_CRASHED; the others complete',
    async (how) => {
      const rt = await startRuntime(
        { entryPoints: [api('crash', 'crash'), api('echo', 'echo', { maxConcurrent: 100 })] },
        onCleanup,
      )
      const others = Array.from({ length: 200 }, (_, i) => rt.triggerAndWait('echo', i))
      const crashed = rt.triggerAndWait('crash', { how })
      const more = Array.from({ length: 200 }, (_, i) => rt.triggerAndWait('echo', i))
      const r = await crashed
      expect(r.status).toBe('failed')
      expect(r.error!.code).toBe(ErrorCode.WORKER_CRASHED)
      const rest = await Promise.all([...others, ...more])
      expect(rest.filter((x) => x.status !== 'completed')).toEqual([])
    },
  )

  it('re-runs every suspect of a crash on a one-thread pool, though each must run alone and they queue for it', async () => {
    // One thread, several executions on it when it dies: each becomes a suspect that re-runs alone, so
    // all but one of those messages wait in Piscina's queue until the thread is free.
    const rt = await startRuntime(
      {
        pool: { threads: 1, tasksPerThread: 4 },
        entryPoints: [api('crash', 'crash'), api('slow', 'sleep', { maxConcurrent: 8 })],
      },
      onCleanup,
    )
    const slow = Array.from({ length: 6 }, (_, i) => rt.triggerAndWait('slow', { ms: 50, value: i }))
    const crashed = rt.triggerAndWait('crash', { how: 'uncaught' })
    expect((await crashed).error!.code).toBe(ErrorCode.WORKER_CRASHED)
    expect((await Promise.all(slow)).map((r) => [r.status, r.output])).toEqual(
      Array.from({ length: 6 }, (_, i) => ['completed', i]),
    )
  })

  it('refuses to start when a handler module exports no handler, naming the module and the fix', async () => {
    const err = await startRuntime({ entryPoints: [api('bad', 'not-a-handler')] }, onCleanup).catch((e) => e)
    expect(err.code).toBe(ErrorCode.HANDLER_MODULE)
    expect(err.message).toContain('not-a-handler.ts does not export a handler')
    expect(err.message).toContain('export default defineHandler')
  })
})

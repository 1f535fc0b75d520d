import { afterEach, describe, expect, it } from 'vitest'
import { ErrorCode, type ExecutionResult } from '../src/index.js'
import { rapi } from './fixtures/reliability/paths.js'
import { api, startRuntime } from './helpers/runtime.js'

const cleanups: (() => Promise<void>)[] = []
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c()
})
const onCleanup = (fn: () => Promise<void>) => cleanups.push(fn)

/** Counts results by status. */
function tally(results: ExecutionResult[]): Record<string, number> {
  const out: Record<string, number> = {}
  for (const r of results) out[r.status] = (out[r.status] ?? 0) + 1
  return out
}

describe('runaway handlers', () => {
  it('kills a thread whose heap grows past pool.maxHeapMb with AGENTPOOL_WORKER_CRASHED; every other execution completes', async () => {
    const rt = await startRuntime(
      {
        pool: { threads: 2, tasksPerThread: 4, maxHeapMb: 96 },
        entryPoints: [rapi('hog', 'hog'), api('echo', 'echo', { maxConcurrent: 100 })],
      },
      onCleanup,
    )
    const echoes: Promise<ExecutionResult>[] = []
    const hogs: Promise<ExecutionResult>[] = []
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < 100; i++) echoes.push(rt.triggerAndWait('echo', { round, i }))
      hogs.push(rt.triggerAndWait('hog', {}))
    }
    const hogResults = await Promise.all(hogs)
    for (const r of hogResults) {
      expect(r.status).toBe('failed')
      expect(r.error!.code).toBe(ErrorCode.WORKER_CRASHED)
      // 2 when the hog first died as one suspect among others on its thread, then alone.
      expect(r.attempts).toBeLessThanOrEqual(2)
    }
    const echoResults = await Promise.all(echoes)
    expect(tally(echoResults)).toEqual({ completed: 300 })
    expect(echoResults.map((r) => r.output)).toEqual(
      echoes.map((_, k) => expect.objectContaining({ input: { round: Math.floor(k / 100), i: k % 100 } })),
    )
    expect(rt.stats().streams.hog).toMatchObject({ admitted: 3, failed: 3, running: 0, queued: 0 })
    expect(rt.stats().streams.echo).toMatchObject({
      admitted: 300,
      completed: 300,
      failed: 0,
      running: 0,
      queued: 0,
    })
    expect(rt.stats().pool.threadsReplaced).toBeGreaterThanOrEqual(3)
    const after = await Promise.all(Array.from({ length: 50 }, (_, i) => rt.triggerAndWait('echo', i)))
    expect(tally(after)).toEqual({ completed: 50 })
  })

  it('never runs the handler of an execution cancelled while it waited for a thread, and kills no thread for it', async () => {
    const rt = await startRuntime(
      {
        pool: { threads: 1, tasksPerThread: 1 },
        entryPoints: [rapi('blocker', 'marked-sleep'), rapi('victim', 'marked-sleep')],
      },
      onCleanup,
    )
    const ran: string[] = []
    rt.events.subscribe({ types: ['handler_ran'], handler: (e) => void ran.push(e.streamId) })
    const blocker = rt.triggerAndWait('blocker', { ms: 400, value: 'blocked' })
    await rt.events.waitFor({ types: ['handler_ran'], streamId: 'blocker', timeoutMs: 10_000 })
    // The blocker holds the only thread slot: the victim waits for it.
    const controller = new AbortController()
    const victim = rt.triggerAndWait('victim', { ms: 60_000 }, { signal: controller.signal })
    await new Promise((resolve) => setImmediate(resolve))
    controller.abort()
    expect((await victim).status).toBe('cancelled')
    expect((await blocker).output).toBe('blocked')
    expect((await rt.triggerAndWait('blocker', { ms: 1, value: 'after' })).output).toBe('after')
    await expect.poll(() => rt.stats().pool.messagesInFlight, { timeout: 10_000 }).toBe(0)
    expect(ran).toEqual(['blocker', 'blocker'])
    expect(rt.stats().pool.threadsReplaced).toBe(0)
  })

  it('times out busy loops and never-resolving handlers, replaces their threads, and finishes every other execution', async () => {
    const rt = await startRuntime(
      {
        entryPoints: [
          api('spin', 'busy', { timeoutMs: 250 }),
          rapi('never', 'never', { timeoutMs: 250 }),
          api('echo', 'echo', { maxConcurrent: 100 }),
        ],
      },
      onCleanup,
    )
    const runaways: Promise<ExecutionResult>[] = []
    const echoes: Promise<ExecutionResult>[] = []
    for (let round = 0; round < 4; round++) {
      runaways.push(rt.triggerAndWait('spin', {}), rt.triggerAndWait('never', {}))
      for (let i = 0; i < 50; i++) echoes.push(rt.triggerAndWait('echo', i))
    }
    const ends = await Promise.all(runaways)
    for (const r of ends) {
      expect(r.status).toBe('timed_out')
      expect(r.error!.code).toBe(ErrorCode.TIMEOUT)
    }
    expect(tally(await Promise.all(echoes))).toEqual({ completed: 200 })
    const s = rt.stats().streams
    expect(s.spin).toMatchObject({ admitted: 4, timedOut: 4, running: 0, queued: 0 })
    expect(s.never).toMatchObject({ admitted: 4, timedOut: 4, running: 0, queued: 0 })
    expect(s.echo).toMatchObject({ admitted: 200, completed: 200, failed: 0, timedOut: 0 })
    // Every runaway thread is terminated and replaced; the runtime keeps serving on the new ones.
    await expect.poll(() => rt.stats().pool.threadsReplaced, { timeout: 20_000 }).toBeGreaterThanOrEqual(1)
    expect(
      tally(await Promise.all(Array.from({ length: 50 }, (_, i) => rt.triggerAndWait('echo', i)))),
    ).toEqual({
      completed: 50,
    })
    // The runaway messages are all terminated, none is left holding a thread.
    await expect.poll(() => rt.stats().pool.messagesInFlight, { timeout: 20_000 }).toBe(0)
  })
})

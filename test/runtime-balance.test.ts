import { afterEach, describe, expect, it } from 'vitest'
import { api, startRuntime } from './helpers/runtime.js'

const cleanups: (() => Promise<void>)[] = []
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c()
})
const onCleanup = (fn: () => Promise<void>) => cleanups.push(fn)

describe('balancing messages over threads', () => {
  it('gives each wave of synchronous work to both threads, even while the last replies are still on their way', async () => {
    // One message slot per thread: each wave of 2 goes out as two messages of 1. The previous wave's ends
    // free both threads before Piscina has heard back from them, which is when a balancer that goes by
    // Piscina's own count of unfinished tasks can send both messages to one thread while the other idles.
    const rt = await startRuntime(
      { pool: { threads: 2, tasksPerThread: 1 }, entryPoints: [api('work', 'thread', { maxConcurrent: 2 })] },
      onCleanup,
    )
    for (let wave = 0; wave < 40; wave++) {
      const results = await Promise.all([
        rt.triggerAndWait('work', { ms: 3 }),
        rt.triggerAndWait('work', { ms: 3 }),
      ])
      for (const r of results) expect(r.status).toBe('completed')
      expect(new Set(results.map((r) => r.output)).size, `wave ${wave}`).toBe(2)
    }
  })
})

describe('end records of synchronous handlers', () => {
  it('reach the main thread while the same thread still runs other synchronous work', async () => {
    // One thread and one message slot: both executions travel in one pool message and run back to back
    // on one thread without yielding to its event loop. The second spins until the main thread has the
    // first one's result, so it is released only if that end record left the thread before it started.
    const rt = await startRuntime(
      {
        pool: { threads: 1, tasksPerThread: 1 },
        entryPoints: [api('work', 'wait-flag', { maxConcurrent: 2 })],
      },
      onCleanup,
    )
    const flag = new SharedArrayBuffer(4)
    const first = rt.triggerAndWait('work', { capMs: 0 })
    const second = rt.triggerAndWait('work', { flag, capMs: 10_000 })
    expect((await first).output).toBe('no flag')
    Atomics.store(new Int32Array(flag), 0, 1)
    expect((await second).output).toBe('released')
  })
})

describe('messages of short executions', () => {
  it('carry many executions each once the threads have reported how short they are', async () => {
    // 512 executions of a near-empty handler on 2 threads × 4 message slots. Spread over the slots alone
    // (each message a share of what waits), they travel in about 40 messages, the last ones of one to a
    // few executions; sized to carry ~200 µs of work each, in about 15–25 (fewer the quieter the machine:
    // the threads report busy time per execution). The handler reports which message carried it: the
    // executions of one message start in one turn of their thread.
    const rt = await startRuntime(
      {
        pool: { threads: 2, tasksPerThread: 4 },
        entryPoints: [
          api('short', '../cluster/message', { maxConcurrent: 512, maxQueue: 512, timeoutMs: 0 }),
        ],
      },
      onCleanup,
    )
    const burst = () => Promise.all(Array.from({ length: 512 }, () => rt.triggerAndWait('short', {})))
    // The first bursts warm the threads up and teach the dispatcher how long an execution takes.
    for (let i = 0; i < 5; i++) await burst()
    const results = await burst()
    for (const r of results) expect(r.status).toBe('completed')
    const messages = new Set(results.map((r) => (r.output as { message: string }).message))
    expect(messages.size).toBeLessThan(32)
  })

  it('still go to every thread when only a few may start', async () => {
    // Once the dispatcher knows executions to be short, a message carries many of them: but two
    // executions that may start together still go to both threads rather than one message to one thread.
    const rt = await startRuntime(
      {
        pool: { threads: 2, tasksPerThread: 4 },
        entryPoints: [
          api('short', '../cluster/message', { maxConcurrent: 512, maxQueue: 512, timeoutMs: 0 }),
          api('work', 'thread', { maxConcurrent: 2 }),
        ],
      },
      onCleanup,
    )
    for (let i = 0; i < 5; i++)
      await Promise.all(Array.from({ length: 512 }, () => rt.triggerAndWait('short', {})))
    const pair = await Promise.all([
      rt.triggerAndWait('work', { ms: 20 }),
      rt.triggerAndWait('work', { ms: 20 }),
    ])
    expect(new Set(pair.map((r) => r.output)).size).toBe(2)
  })
})

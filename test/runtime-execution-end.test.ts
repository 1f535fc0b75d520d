import { randomUUID } from 'node:crypto'
import { afterEach, describe, expect, it } from 'vitest'
import type { AgentRuntime } from '../src/index.js'
import { listen as listenOn } from './helpers/listen.js'
import { api, startRuntime } from './helpers/runtime.js'

const cleanups: (() => Promise<void>)[] = []
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c()
})

const ENDED = 'AGENTPOOL_EXECUTION_ENDED'
const g = { scope: 'global' as const }

function listen() {
  return listenOn((fn) => cleanups.push(fn))
}

/** A word the handler raises once it has written its keys, and a promise of that. */
function writtenFlag(): { flag: SharedArrayBuffer; written: Promise<unknown> } {
  const flag = new SharedArrayBuffer(4)
  const { value } = Atomics.waitAsync(new Int32Array(flag), 0, 0)
  return { flag, written: Promise.resolve(value) }
}

async function runtime(): Promise<AgentRuntime> {
  return startRuntime(
    { pool: { threads: 2, tasksPerThread: 2 }, entryPoints: [api('late', 'late-state')] },
    (fn) => cleanups.push(fn),
  )
}

/** What the runtime's state holds for `executionId`'s execution scope, and the live keys in all. */
function leftovers(rt: AgentRuntime, executionId: string) {
  return {
    executionScope: rt.state.createBuffer(executionId, 'late', 'shared').readAll({ scope: 'execution' }),
    keys: rt.state.stats().keys,
  }
}

describe('an execution that ends frees its execution scope, however it ends', () => {
  it('frees the execution scope of a handler that ignores its signal and is timed out, and its thread terminated', async () => {
    const rt = await runtime()
    const { flag, written } = writtenFlag()
    const id = await rt.trigger('late', { mode: 'spin', keys: 20, flag }, { timeoutMs: 1000 })
    await written
    const result = await rt.waitForExecution(id)
    expect(result.status).toBe('timed_out')
    expect(rt.state.createBuffer('check', 'late', 'shared').read('written', g)).toBe(1)
    // Only the global counter is left.
    expect(leftovers(rt, result.executionId)).toEqual({ executionScope: {}, keys: 1 })
    await rt.stop()
    expect(rt.state.stats().keys).toBe(1)
    expect(rt.stats().pool.threadsReplaced).toBeGreaterThanOrEqual(1)
  })

  it('frees the execution scope of a cancelled execution whose handler keeps running', async () => {
    const rt = await runtime()
    const { flag, written } = writtenFlag()
    const abort = new AbortController()
    const id = await rt.trigger('late', { mode: 'spin', keys: 5, flag }, { signal: abort.signal })
    await written
    abort.abort()
    const result = await rt.waitForExecution(id)
    expect(result.status).toBe('cancelled')
    expect(leftovers(rt, id)).toEqual({ executionScope: {}, keys: 1 })
  })

  it('refuses, in every scope, the writes a timed-out handler makes after its timeout, and stores none of them', async () => {
    const rt = await runtime()
    const heard = listen()
    const { flag, written } = writtenFlag()
    const id = await rt.trigger(
      'late',
      { mode: 'sleep', keys: 3, flag, channel: heard.name, delayMs: 300 },
      { timeoutMs: 100 },
    )
    await written
    expect((await rt.waitForExecution(id)).status).toBe('timed_out')
    // The handler is still running on its thread (the abort grace period is longer than its sleep).
    expect(await heard.message).toEqual([ENDED, ENDED, ENDED])
    expect(leftovers(rt, id)).toEqual({ executionScope: {}, keys: 1 })
    expect(rt.state.createBuffer('check', 'late', 'shared').readAll({ scope: 'stream' })).toEqual({})
  })

  it('refuses the writes of a timer a completed handler left running, in every scope, so its keys stay freed', async () => {
    const rt = await runtime()
    const heard = listen()
    const result = await rt.triggerAndWait('late', {
      mode: 'leave',
      keys: 3,
      channel: heard.name,
      delayMs: 30,
    })
    expect(result).toMatchObject({ status: 'completed', output: 'returned' })
    expect(await heard.message).toEqual([ENDED, ENDED, ENDED])
    expect(leftovers(rt, result.executionId)).toEqual({ executionScope: {}, keys: 1 })
  })

  it('frees every execution scope of a burst of timed-out executions sharing threads, and completes the rest', async () => {
    const rt = await runtime()
    const spinning = Array.from({ length: 3 }, () =>
      rt.triggerAndWait('late', { mode: 'spin', keys: 4 }, { timeoutMs: 120 }),
    )
    const fine = Array.from({ length: 6 }, () =>
      rt.triggerAndWait('late', { mode: 'sleep', keys: 4, channel: `unused-${randomUUID()}`, delayMs: 1 }),
    )
    const results = await Promise.all([...spinning, ...fine])
    expect(results.slice(0, 3).map((r) => r.status)).toEqual(['timed_out', 'timed_out', 'timed_out'])
    expect(results.slice(3).map((r) => r.status)).toEqual(Array(6).fill('completed'))
    await rt.stop()
    for (const r of results) expect(leftovers(rt, r.executionId).executionScope).toEqual({})
    // `written`, and the stream and global keys the completed ones wrote before they ended.
    expect(rt.state.stats().keys).toBe(3)
    expect(rt.state.engine.audit()).toEqual([])
  })
})

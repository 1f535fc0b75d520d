import { afterEach, describe, expect, it } from 'vitest'
import type { AgentRuntime } from '../src/index.js'
import { api, startRuntime } from './helpers/runtime.js'

const cleanups: (() => Promise<void>)[] = []
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c()
})

const g = { scope: 'global' as const }
const INNOCENTS = 8

/** Tries a main-thread write every few ms until stopped; counts the StateBusyErrors, and those after a success. */
function mainWrites(rt: AgentRuntime) {
  const buf = rt.state.createBuffer('main-writer', 'main', 'shared')
  const tally = { ok: 0, busy: 0, busyAfterOk: 0, other: [] as string[] }
  let i = 0
  const timer = setInterval(() => {
    try {
      buf.write('main', ++i, g)
      tally.ok++
    } catch (err) {
      const code = (err as { code?: string }).code
      if (code !== 'AGENTPOOL_STATE_BUSY') tally.other.push(String(code))
      else if (tally.ok > 0) tally.busyAfterOk++
      else tally.busy++
    }
  }, 5)
  return { tally, stop: () => clearInterval(timer) }
}

describe('a function that holds the state commit lock past state.lockBudgetMs', () => {
  it('is stopped and fails with AGENTPOOL_STATE_LOCK_BUDGET, while 8 innocent executions of another entry point complete and main-thread writes go through again', async () => {
    const rt = await startRuntime(
      {
        pool: { threads: 2, tasksPerThread: 1 },
        state: { lockBudgetMs: 100 },
        entryPoints: [api('runaway', 'lock-runaway'), api('innocent', 'lock-runaway')],
      },
      (fn) => cleanups.push(fn),
    )
    const flag = new SharedArrayBuffer(4)
    const holding = Atomics.waitAsync(new Int32Array(flag), 0, 0).value
    const runaway = rt.triggerAndWait('runaway', { kind: 'runaway', flag }, { timeoutMs: 30_000 })
    await holding
    const writes = mainWrites(rt)
    // They need the lock the runaway holds; without the budget it would keep it until its thread is
    // replaced, a grace period after its own timeout (31 s) — past these executions' timeout. With it,
    // they wait about the budget (and those sharing its thread, for a new thread to start).
    const innocents = await Promise.all(
      Array.from({ length: INNOCENTS }, (_, id) =>
        rt.triggerAndWait('innocent', { kind: 'innocent', id, rounds: 20 }, { timeoutMs: 10_000 }),
      ),
    )
    const stopped = await runaway
    writes.stop()
    expect(stopped.status).toBe('failed')
    expect(stopped.error?.code).toBe('AGENTPOOL_STATE_LOCK_BUDGET')
    expect(stopped.error?.message).toContain('state.lockBudgetMs (100 ms)')
    expect(innocents.map((r) => r.status)).toEqual(Array(INNOCENTS).fill('completed'))
    expect(innocents.map((r) => r.output)).toEqual(Array.from({ length: INNOCENTS }, () => [20, 20]))
    // Once a main-thread write went through again, none was refused any more.
    expect(writes.tally.ok).toBeGreaterThan(0)
    expect(writes.tally.busyAfterOk).toBe(0)
    expect(writes.tally.other).toEqual([])
    // The runaway's own commit was rolled back: its counter holds only the increment before it.
    const check = rt.state.createBuffer('check', 'main', 'shared')
    expect(check.read('runaway', g)).toBe(1)
    expect(rt.state.engine.lockOwner()).toBe(-1)
    expect(rt.state.engine.audit()).toEqual([])
    expect(rt.stats().pool.threadsReplaced).toBe(1)
  })
})

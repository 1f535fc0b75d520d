import { describe, expect, it } from 'vitest'
import { SharedBufferManager } from '../src/state/index.js'
import { runAll } from './fixtures/state-threads.js'

const THREADS = 3
const EXECUTIONS = 120 // per thread
const TASKS_PER_THREAD = 4

function manager(): SharedBufferManager {
  return SharedBufferManager.create({ maxBytes: 16 << 20, maxKeys: 4096, historySize: 2000 })
}

describe('isolation levels across threads', () => {
  it('synchronized: the read-await-write counter loses no update once conflicts are retried, and each conflict is reported', async () => {
    const mgr = manager()
    const before = mgr.stats().conflicts
    const res = await runAll(
      mgr,
      'counter',
      Array.from({ length: THREADS }, () => ({
        level: 'synchronized',
        executions: EXECUTIONS,
        tasksPerThread: TASKS_PER_THREAD,
      })),
    )
    const main = mgr.createBuffer('check', 'counter', 'shared')
    expect(main.read<any>('count', { scope: 'stream' }).n).toBe(THREADS * EXECUTIONS)
    const thrown = res.reduce((s, r) => s + r.conflictsThrown, 0)
    expect(thrown).toBeGreaterThan(0)
    expect(res.reduce((s, r) => s + r.conflictsHooked, 0)).toBe(thrown)
    expect(mgr.stats().conflicts - before).toBe(thrown)
    expect(res.every((r) => r.torn === 0)).toBe(true)
    // Execution scopes were all cleaned up: only the counter key is left.
    expect(mgr.stats().keys).toBe(1)
  })

  it('shared: last writer wins, nothing is torn, and the final value is the last committed write', async () => {
    const mgr = manager()
    const res = await runAll(
      mgr,
      'counter',
      Array.from({ length: THREADS }, () => ({
        level: 'shared',
        executions: EXECUTIONS,
        tasksPerThread: TASKS_PER_THREAD,
      })),
    )
    expect(res.every((r) => r.torn === 0 && r.conflictsThrown === 0)).toBe(true)
    const main = mgr.createBuffer('check', 'counter', 'shared')
    const final = main.read<any>('count', { scope: 'stream' })
    expect(final.n).toBeGreaterThanOrEqual(1)
    expect(final.n).toBeLessThanOrEqual(THREADS * EXECUTIONS)
    const [last] = mgr.recentChanges(1)
    expect(last!.key).toBe('count')
    expect(last!.new).toEqual(final)
    expect(mgr.stats().conflicts).toBe(0)
  })

  it('isolated: no execution sees another execution’s writes, and update() stays exact', async () => {
    const mgr = manager()
    const res = await runAll(
      mgr,
      'isolated',
      Array.from({ length: THREADS }, () => ({ executions: EXECUTIONS, tasksPerThread: TASKS_PER_THREAD })),
    )
    expect(res.map((r) => r.violations)).toEqual(Array(THREADS).fill(0))
    const main = mgr.createBuffer('check', 'iso', 'shared')
    expect(main.read('secret', { scope: 'stream' })).toBeUndefined()
    expect(main.read('shared-value', { scope: 'stream' })).toBeUndefined()
    expect(main.read('visits', { scope: 'stream' })).toBe(THREADS * EXECUTIONS)
  })

  it('an execution cannot reach another execution’s execution scope', () => {
    const mgr = manager()
    const a = mgr.createBuffer('exec-a', 's', 'shared')
    const b = mgr.createBuffer('exec-b', 's', 'shared')
    a.write('private', 1)
    expect(a.read('private')).toBe(1)
    expect(b.read('private')).toBeUndefined()
    expect(b.readAll()).toEqual({})
    mgr.cleanupExecution('exec-a')
    expect(a.read('private')).toBeUndefined()
    expect(mgr.stats().keys).toBe(0)
  })

  it('synchronized: a key created after this execution saw it absent is a conflict; a key never read is written blind', () => {
    const mgr = manager()
    const a = mgr.createBuffer('a', 's', 'synchronized')
    const b = mgr.createBuffer('b', 's', 'synchronized')
    expect(a.read('k')).toBeUndefined() // looked in execution, stream and global: all absent
    b.write('k', 1, { scope: 'global' })
    expect(() => a.write('k', 2, { scope: 'global' })).toThrow(
      expect.objectContaining({ code: 'AGENTPOOL_STATE_CONFLICT' }),
    )
    a.write('never-read', 5, { scope: 'stream' })
    expect(b.read('never-read', { scope: 'stream' })).toBe(5)
    // After a fresh read the write goes through, and the execution's own write does not conflict with itself.
    expect(a.read('k', { scope: 'global' })).toBe(1)
    a.write('k', 3, { scope: 'global' })
    a.write('k', 4, { scope: 'global' })
    expect(b.read('k', { scope: 'global' })).toBe(4)
  })
})

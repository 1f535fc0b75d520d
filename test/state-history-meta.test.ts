import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { SharedBufferManager } from '../src/state/index.js'

/**
 * A thread encodes the commit meta (execution and stream ids) of its last committing execution once and
 * reuses it: interleaved executions on one thread must still each be named in their own history entries.
 */
describe('history entries name the execution and stream that committed them', () => {
  it('with the commits of several executions interleaved on one thread, ids of every length', () => {
    const id = fc.string({ minLength: 1, maxLength: 40 }).filter((s) => s.isWellFormed())
    fc.assert(
      fc.property(
        fc.array(
          fc.tuple(fc.oneof(fc.constantFrom('e1', 'e2'), id), fc.oneof(fc.constantFrom('s1', 's2'), id)),
          {
            minLength: 1,
            maxLength: 5,
          },
        ),
        fc.array(fc.tuple(fc.nat(), fc.constantFrom('update', 'write', 'transaction')), {
          minLength: 1,
          maxLength: 30,
        }),
        (executions, steps) => {
          const mgr = SharedBufferManager.create({ maxBytes: 4 << 20, maxKeys: 256, historySize: 64 })
          const buffers = executions.map(([e, s]) => mgr.createBuffer(e, s, 'shared'))
          const expected: { executionId: string; streamId: string }[] = []
          for (const [pick, op] of steps) {
            const i = pick % buffers.length
            const b = buffers[i]!
            if (op === 'update') b.update('n', (n: number | undefined) => (n ?? 0) + 1, { scope: 'global' })
            else if (op === 'write') b.write('w', { at: expected.length }, { scope: 'stream' })
            else b.transaction((tx) => tx.write('t', String(expected.length), { scope: 'global' }))
            expected.push({ executionId: executions[i]![0], streamId: executions[i]![1] })
          }
          const named = mgr
            .recentChanges(steps.length)
            .reverse()
            .map((c) => ({ executionId: c.executionId, streamId: c.streamId }))
          expect(named).toEqual(expected)
        },
      ),
      { numRuns: 200, seed: 20261205 },
    )
  })
})

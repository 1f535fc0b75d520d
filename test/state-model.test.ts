import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { SharedBufferManager } from '../src/state/index.js'
import { modelStep } from './fixtures/state-model-step.js'
import { runAll } from './fixtures/state-threads.js'

const KEYS = ['a', 'b', 'c', 'd', '__proto__']

type Op =
  | { kind: 'write'; key: string; value: unknown }
  | { kind: 'delete'; key: string }
  | { kind: 'update'; key: string; value: number }
  | { kind: 'transaction'; keys: [string, string, string]; value: number }

const key = fc.constantFrom(...KEYS)
const value = fc.oneof(
  fc.integer({ min: -1000, max: 1000 }),
  fc.record({ s: fc.string({ maxLength: 40 }) }),
  fc.double({ noNaN: true }),
)
const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ kind: fc.constant('write' as const), key, value }),
  fc.record({ kind: fc.constant('delete' as const), key }),
  fc.record({ kind: fc.constant('update' as const), key, value: fc.integer({ min: 0, max: 100 }) }),
  fc.record({
    kind: fc.constant('transaction' as const),
    keys: fc.tuple(key, key, key),
    value: fc.integer({ min: 0, max: 100 }),
  }),
)

/** Applies one op to the sequential model; returns what the op returned. */
function applyToModel(model: Map<string, unknown>, o: Op): unknown {
  switch (o.kind) {
    case 'write':
      model.set(o.key, o.value)
      return undefined
    case 'delete': {
      const had = model.has(o.key)
      model.delete(o.key)
      return had
    }
    case 'update': {
      const next = modelStep(model.get(o.key), o.value)
      model.set(o.key, next)
      return next
    }
    case 'transaction': {
      const a = model.get(o.keys[0])
      model.set(o.keys[1], modelStep(a, o.value))
      model.delete(o.keys[2])
      return a
    }
  }
}

describe('state against a sequential model', () => {
  it('random write / update / delete / transaction sequences from 3 threads match the model applied in commit order', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.array(op, { minLength: 50, maxLength: 150 }), { minLength: 3, maxLength: 3 }),
        async (perThread) => {
          const mgr = SharedBufferManager.create({ maxBytes: 8 << 20, maxKeys: 256, historySize: 10 })
          const res = await runAll(
            mgr,
            'model',
            perThread.map((ops) => ({ ops })),
          )
          const log = res.flatMap((r) => r.log).sort((x: any, y: any) => x.version - y.version)
          // Every op committed exactly once, each at its own place in the commit order.
          expect(new Set(log.map((e: any) => e.version)).size).toBe(log.length)
          const model = new Map<string, unknown>()
          for (const e of log) expect(e.result).toEqual(applyToModel(model, e.op))
          const actual = mgr.createBuffer('check', 'model', 'shared').readAll({ scope: 'global' })
          expect(actual).toEqual(Object.fromEntries(model))
          expect(mgr.stats().keys).toBe(model.size)
          expect(mgr.engine.audit()).toEqual([])
        },
      ),
      { numRuns: 8, seed: 424242, endOnFailure: true },
    )
  })
})

import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import type { IsolationLevel } from '../src/config/index.js'
import { StateConflictError } from '../src/errors.js'
import { SharedBufferManager, type StreamBuffer } from '../src/state/index.js'

/**
 * Random interleavings of executions over one stream scope, at every isolation level, against a sequential
 * model of what that level promises. Each step is one state call of one execution (or its end, where a
 * `serializable` execution commits); the model says what the call returns, which calls conflict, and what
 * is committed at the end.
 */

const KEYS = ['a', 'b', 'c'] as const
type Key = (typeof KEYS)[number]

type Op =
  | { t: 'read'; k: Key }
  | { t: 'write'; k: Key; v: number }
  | { t: 'delete'; k: Key }
  | { t: 'update'; k: Key; d: number }
  | { t: 'increment'; k: Key; d: number }

const key = fc.constantFrom(...KEYS)
const small = fc.integer({ min: 0, max: 99 })
const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ t: fc.constant('read' as const), k: key }),
  fc.record({ t: fc.constant('write' as const), k: key, v: small }),
  fc.record({ t: fc.constant('delete' as const), k: key }),
  fc.record({ t: fc.constant('update' as const), k: key, d: small }),
  fc.record({ t: fc.constant('increment' as const), k: key, d: small }),
)
const scenario = fc.record({
  opening: fc.dictionary(key, small),
  programs: fc.array(fc.array(op, { minLength: 1, maxLength: 6 }), { minLength: 2, maxLength: 4 }),
  picks: fc.array(fc.nat(), { minLength: 40, maxLength: 40 }),
})

const ABSENT = Symbol('absent')
type Cell = number | typeof ABSENT
const CONFLICT = 'conflict'

/** The committed state: each key's value and a version that moves on every change. */
class Committed {
  readonly cells = new Map<Key, { value: number; ver: number }>()
  private counter = 0

  value(k: Key): Cell {
    return this.cells.get(k)?.value ?? ABSENT
  }

  ver(k: Key): number {
    return this.cells.get(k)?.ver ?? 0
  }

  set(k: Key, v: Cell): void {
    if (v === ABSENT) this.cells.delete(k)
    else this.cells.set(k, { value: v, ver: ++this.counter })
  }
}

const plus = (c: Cell, d: number): number => (c === ABSENT ? 0 : c) + d
const out = (c: Cell): number | undefined => (c === ABSENT ? undefined : c)

/** What one execution at one level promises, step by step. */
interface ModelExecution {
  step(o: Op): unknown
  end(): boolean
}

function modelOf(level: IsolationLevel, db: Committed): ModelExecution {
  switch (level) {
    case 'shared':
      return {
        step(o) {
          const cur = db.value(o.k)
          if (o.t === 'read') return out(cur)
          if (o.t === 'write') return void db.set(o.k, o.v)
          if (o.t === 'delete') {
            db.set(o.k, ABSENT)
            return cur !== ABSENT
          }
          db.set(o.k, plus(cur, o.d))
          return o.t === 'update' ? plus(cur, o.d) : undefined
        },
        end: () => true,
      }
    case 'isolated': {
      const pinned = new Map<Key, Cell>()
      const overlay = new Map<Key, Cell>()
      const view = (k: Key): Cell => {
        if (overlay.has(k)) return overlay.get(k)!
        if (!pinned.has(k)) pinned.set(k, db.value(k))
        return pinned.get(k)!
      }
      return {
        step(o) {
          if (o.t === 'read') return out(view(o.k))
          if (o.t === 'write') return void overlay.set(o.k, o.v)
          if (o.t === 'delete') {
            const existed = view(o.k) !== ABSENT
            overlay.set(o.k, ABSENT)
            return existed
          }
          // update and increment change the committed value; the private view follows it.
          const next = plus(db.value(o.k), o.d)
          db.set(o.k, next)
          overlay.delete(o.k)
          pinned.set(o.k, next)
          return o.t === 'update' ? next : undefined
        },
        end: () => true,
      }
    }
    case 'synchronized': {
      const seen = new Map<Key, number>()
      const changed = (k: Key) => seen.has(k) && seen.get(k) !== db.ver(k)
      return {
        step(o) {
          const cur = db.value(o.k)
          if (o.t === 'read') {
            seen.set(o.k, db.ver(o.k))
            return out(cur)
          }
          if (o.t === 'write' || o.t === 'delete') {
            if (changed(o.k)) return CONFLICT
            db.set(o.k, o.t === 'write' ? o.v : ABSENT)
            seen.set(o.k, db.ver(o.k))
            return o.t === 'write' ? undefined : cur !== ABSENT
          }
          db.set(o.k, plus(cur, o.d))
          seen.set(o.k, db.ver(o.k))
          return o.t === 'update' ? plus(cur, o.d) : undefined
        },
        end: () => true,
      }
    }
    case 'serializable': {
      const pending = new Map<Key, Cell>()
      const adds = new Map<Key, number>()
      const reads = new Map<Key, number>()
      let conflicted = false
      const stale = () => [...reads].some(([k, v]) => db.ver(k) !== v)
      const lookup = (k: Key): Cell => {
        if (pending.has(k)) return pending.get(k)!
        if (!reads.has(k)) reads.set(k, db.ver(k))
        // Every read re-checks the whole read set: the view stays one snapshot.
        if (stale()) throw new Error(CONFLICT)
        const v = db.value(k)
        return adds.has(k) ? plus(v, adds.get(k)!) : v
      }
      return {
        step(o) {
          if (conflicted) return CONFLICT
          try {
            if (o.t === 'read') return out(lookup(o.k))
            if (o.t === 'write' || o.t === 'delete') {
              const existed = o.t === 'write' || lookup(o.k) !== ABSENT
              pending.set(o.k, o.t === 'write' ? o.v : ABSENT)
              adds.delete(o.k)
              return o.t === 'write' ? undefined : existed
            }
            if (o.t === 'update') {
              const next = plus(lookup(o.k), o.d)
              pending.set(o.k, next)
              adds.delete(o.k)
              return next
            }
            if (pending.has(o.k)) pending.set(o.k, plus(pending.get(o.k)!, o.d))
            else adds.set(o.k, (adds.get(o.k) ?? 0) + o.d)
            return undefined
          } catch {
            conflicted = true
            return CONFLICT
          }
        },
        end() {
          if (conflicted || stale()) return false
          for (const [k, v] of pending) db.set(k, v)
          for (const [k, d] of adds) db.set(k, plus(db.value(k), d))
          return true
        },
      }
    }
  }
}

function realStep(buf: StreamBuffer, o: Op): unknown {
  const scope = { scope: 'stream' as const }
  try {
    switch (o.t) {
      case 'read':
        return buf.read(o.k, scope)
      case 'write':
        return buf.write(o.k, o.v, scope)
      case 'delete':
        return buf.delete(o.k, scope)
      case 'update':
        return buf.update<number>(o.k, (c) => (c ?? 0) + o.d, scope)
      case 'increment':
        return buf.increment(o.k, o.d, scope)
    }
  } catch (err) {
    if (err instanceof StateConflictError) return CONFLICT
    throw err
  }
}

const LEVELS: IsolationLevel[] = ['isolated', 'shared', 'synchronized', 'serializable']

describe('every isolation level against a sequential model of its promise', () => {
  for (const level of LEVELS) {
    it(`random interleavings of executions at ${level} return and commit what the model says`, () => {
      fc.assert(
        fc.property(scenario, ({ opening, programs, picks }) => {
          const mgr = SharedBufferManager.create({ maxBytes: 1 << 20, maxKeys: 256, historySize: 0 })
          const db = new Committed()
          const setup = mgr.createBuffer('opening', 'model', 'shared')
          for (const [k, v] of Object.entries(opening)) {
            setup.write(k, v, { scope: 'stream' })
            db.set(k as Key, v)
          }
          const execs = programs.map((ops, i) => ({
            ops,
            next: 0,
            real: mgr.createBuffer(`e${i}`, 'model', level),
            model: modelOf(level, db),
            realConflicted: false,
          }))
          let live = execs.slice()
          for (let p = 0; live.length > 0; p++) {
            const e = live[(picks[p % picks.length]! + p) % live.length]!
            if (e.next === e.ops.length) {
              expect(e.real.commit()).toBe(e.model.end())
              live = live.filter((x) => x !== e)
              continue
            }
            const o = e.ops[e.next++]!
            const expected = e.model.step(o)
            // A conflicting serializable execution makes no more calls: it would be re-run from the start.
            const actual = e.realConflicted ? CONFLICT : realStep(e.real, o)
            if (level === 'serializable' && actual === CONFLICT) e.realConflicted = true
            expect(actual).toEqual(expected)
          }
          const committed = mgr.createBuffer('check', 'model', 'shared').readAll({ scope: 'stream' })
          expect(committed).toEqual(Object.fromEntries([...db.cells].map(([k, c]) => [k, c.value])))
          expect(mgr.engine.audit()).toEqual([])
        }),
        { numRuns: 150, seed: 20261204 },
      )
    })
  }
})

import { describe, expect, it } from 'vitest'
import { ErrorCode } from '../src/errors.js'
import { SharedBufferManager, type StateChange } from '../src/state/index.js'
import { spawn } from './fixtures/state-threads.js'

const THREADS = 3
const g = { scope: 'global' as const }

function manager(): SharedBufferManager {
  return SharedBufferManager.create({ maxBytes: 16 << 20, maxKeys: 1024, historySize: 64 })
}

/** A change without its wall-clock time, to compare runs. */
const timeless = ({ timestamp: _t, ...rest }: StateChange) => rest

/** Writes, updates and deletes that move one key between numbers (int, float, -0, past 32 bits) and other values. */
function churnNumbers(mgr: SharedBufferManager): unknown[] {
  const buf = mgr.createBuffer('e1', 's1', 'shared')
  const seen: unknown[] = []
  const s = { scope: 'stream' as const }
  buf.write('n', 1, g)
  for (let i = 0; i < 5; i++) seen.push(buf.update('n', (v: number | undefined) => v! + 1, g))
  seen.push(buf.update('n', (v: number | undefined) => v! + 0.25, g))
  buf.write('n', 2 ** 31 - 1, g)
  seen.push(buf.update('n', (v: number | undefined) => v! + 1, g))
  seen.push(buf.update('n', () => -0, g))
  seen.push(buf.update('n', () => 'text', g))
  seen.push(buf.update('n', () => 7, g))
  seen.push(buf.update('n', () => ({ deep: [1, 2, 3] }), g))
  seen.push(buf.update('n', () => Number.NaN, g))
  buf.write('n', -5, g)
  seen.push(buf.read('n', g))
  buf.write('m', 1.5, s)
  seen.push(buf.update('m', (v: number | undefined) => v! * 2, s))
  seen.push(buf.delete('m', s))
  seen.push(buf.update('m', (v: number | undefined) => (v ?? 10) + 1, s))
  seen.push(buf.update('x', () => 3)) // execution scope: no history
  return seen
}

describe('update() and write() of numbers (the inline fast path)', () => {
  it(`update() from ${THREADS} threads counts every increment, for integers and floats, with the fast path and without`, async () => {
    for (const plain of [false, true]) {
      const mgr = manager()
      const runs = [
        { key: 'int', step: 1, scope: 'global' },
        { key: 'float', step: 0.5, scope: 'stream' },
      ]
      const ws = runs.flatMap((r) =>
        Array.from({ length: THREADS }, () => spawn(mgr, 'hotUpdate', { ...r, n: 3000, plain })),
      )
      try {
        const done = await Promise.all(ws.map((w) => w.result))
        expect(done.every((d) => d.done === 3000)).toBe(true)
      } finally {
        await Promise.all(ws.map((w) => w.worker.terminate()))
      }
      const check = mgr.createBuffer('check', 'hot', 'shared')
      expect(check.read('int', g)).toBe(THREADS * 3000)
      expect(check.read('float', { scope: 'stream' })).toBe(THREADS * 3000 * 0.5)
      expect(mgr.stats().version).toBe(2 * THREADS * 3000)
      expect(mgr.engine.audit()).toEqual([])
    }
  })

  it('moving a key between numbers and other values gives the same values, history and memory as the general path', () => {
    const runs = [true, false].map((fast) => {
      const mgr = manager()
      mgr.engine.inlineFastPath = fast
      const seen = churnNumbers(mgr)
      const s = mgr.stats()
      expect(mgr.engine.audit()).toEqual([])
      return {
        seen,
        history: mgr.recentChanges().map(timeless),
        bytes: s.bytesUsed,
        keys: s.keys,
        version: s.version,
      }
    })
    expect(runs[0]).toEqual(runs[1])
    const { seen, history } = runs[0]!
    expect(seen).toEqual([
      2,
      3,
      4,
      5,
      6,
      6.25,
      2 ** 31,
      -0,
      'text',
      7,
      { deep: [1, 2, 3] },
      Number.NaN,
      -5,
      3,
      true,
      11,
      3,
    ])
    expect(Object.is(seen[7], -0)).toBe(true)
    // Newest first: the last stream-scope update created 'm' again; the one before it overwrote 'n'.
    expect(history[0]).toMatchObject({
      key: 'm',
      scope: 'stream',
      old: undefined,
      new: 11,
      executionId: 'e1',
      streamId: 's1',
    })
    expect(history.find((c) => c.new === 2 ** 31)).toMatchObject({
      key: 'n',
      scope: 'global',
      old: 2 ** 31 - 1,
    })
    expect(history.filter((c) => c.key === 'n').map((c) => c.new)).toEqual([
      -5,
      Number.NaN,
      { deep: [1, 2, 3] },
      7,
      'text',
      -0,
      2 ** 31,
      2 ** 31 - 1,
      6.25,
      6,
      5,
      4,
      3,
      2,
      1,
    ])
    for (let i = 1; i < history.length; i++)
      expect(history[i - 1]!.version).toBeGreaterThan(history[i]!.version)
  })

  it('moving a block-valued key to a number frees the block', () => {
    const mgr = manager()
    const buf = mgr.createBuffer('e', 's', 'shared')
    buf.write('n', 0, g)
    const base = mgr.stats().bytesUsed
    buf.write('n', { big: 'x'.repeat(500) }, g)
    expect(mgr.stats().bytesUsed).toBeGreaterThan(base)
    buf.update('n', () => 1, g)
    expect(mgr.stats().bytesUsed).toBe(base)
    expect(mgr.engine.audit()).toEqual([])
  })

  it('update() of a number runs fn with the commit lock held: a throwing fn writes nothing and frees the lock, reads work, writes are refused', () => {
    const mgr = manager()
    const buf = mgr.createBuffer('e', 's', 'shared')
    buf.write('n', 1, g)
    buf.write('other', 40, g)
    expect(() =>
      buf.update(
        'n',
        () => {
          throw new Error('boom')
        },
        g,
      ),
    ).toThrow('boom')
    expect(mgr.engine.lockOwner()).toBe(-1)
    expect(buf.read('n', g)).toBe(1)
    // A read inside fn is lock-free, so it works while fn holds the lock.
    expect(buf.update('n', (v: number | undefined) => v! + buf.read<number>('other', g)!, g)).toBe(41)
    expect(() =>
      buf.update(
        'n',
        (v: number | undefined) => {
          buf.write('other', 0, g)
          return v! + 1
        },
        g,
      ),
    ).toThrow(expect.objectContaining({ code: ErrorCode.INVALID_ARGUMENT }))
    expect(buf.read('other', g)).toBe(40)
    expect(buf.read('n', g)).toBe(41)
    // A non-number result leaves the fast path; the general path stores it (fn may run twice).
    let runs = 0
    const describeOld = (v: unknown): unknown => {
      runs++
      return `was ${v}`
    }
    expect(buf.update('n', describeOld, g)).toBe('was 41')
    expect(runs).toBeGreaterThanOrEqual(1)
    expect(buf.read('n', g)).toBe('was 41')
    expect(mgr.engine.lockOwner()).toBe(-1)
    expect(mgr.engine.audit()).toEqual([])
  })

  it('state_changed hooks hear every numeric update with its old and new value', () => {
    const mgr = manager()
    const heard: StateChange[] = []
    const buf = mgr.createBuffer('e', 's', 'shared', { onChange: (c) => heard.push(c) })
    buf.write('n', 1, g)
    buf.update('n', (v: number | undefined) => v! + 1, g)
    buf.write('n', 2.5, g)
    expect(heard.map((c) => [c.old, c.new])).toEqual([
      [undefined, 1],
      [1, 2],
      [2, 2.5],
    ])
    expect(heard.map((c) => c.version)).toEqual(
      mgr
        .recentChanges(3)
        .map((c) => c.version)
        .reverse(),
    )
  })

  it('synchronized: a numeric update by another execution makes a write of a key read before it conflict', () => {
    const mgr = manager()
    const a = mgr.createBuffer('a', 's', 'synchronized')
    const b = mgr.createBuffer('b', 's', 'synchronized')
    a.write('n', 1, g)
    expect(a.read('n', g)).toBe(1)
    b.update('n', (v: number | undefined) => v! + 1, g)
    expect(() => a.write('n', 10, g)).toThrow(expect.objectContaining({ code: ErrorCode.STATE_CONFLICT }))
    expect(a.read('n', g)).toBe(2)
    a.write('n', 10, g)
    expect(b.read('n', g)).toBe(10)
  })

  it('a group read (readAll) sees one snapshot while the numbers in it are updated in place', async () => {
    for (const plain of [false, true]) {
      const mgr = manager()
      const flags = new Int32Array(new SharedArrayBuffer(8))
      const writer = spawn(mgr, 'pairIncrement', { plain }, flags)
      const auditor = spawn(mgr, 'pairAudit', { reads: 4000 }, flags)
      try {
        const [w, a] = await Promise.all([writer.result, auditor.result])
        expect(a.bad).toBe(0)
        expect(w.rounds).toBeGreaterThan(0)
      } finally {
        await Promise.all([writer.worker.terminate(), auditor.worker.terminate()])
      }
    }
  })
})

describe('a thread dying in the middle of a numeric update', () => {
  // 5 = every word the fast path stages for an integer over an integer (the slot's seq and value word, the
  // version, the history entry's seq and the ring head), published at once before any change; -1 = just
  // after the commit point.
  for (const crashAt of [5, -1]) {
    it(`process.exit at journal entry ${crashAt} of update() #40: threadExited() ${crashAt === -1 ? 'completes' : 'rolls back'} it and history agrees with the value`, async () => {
      const mgr = manager()
      const main = mgr.createBuffer('main', 'hot', 'shared')
      main.write('hot', 0, g)
      const w = spawn(mgr, 'hotUpdate', { key: 'hot', step: 1, n: 100, crashUpdate: 40, crashAt })
      const tid = w.worker.threadId
      expect(await w.exited).toBe(3)
      expect(mgr.engine.lockOwner()).toBe(tid)
      expect(mgr.threadExited(tid)).toBe(crashAt === -1 ? 'completed' : 'rolled_back')
      expect(mgr.engine.lockOwner()).toBe(-1)
      expect(mgr.engine.audit()).toEqual([])
      const value = crashAt === -1 ? 41 : 40
      expect(main.read('hot', g)).toBe(value)
      expect(mgr.recentChanges(1)[0]).toMatchObject({ key: 'hot', old: value - 1, new: value })
      expect(main.update('hot', (v: number | undefined) => v! + 1, g)).toBe(value + 1)
    })
  }

  it('worker.terminate() while two threads update one counter: afterwards it counts every update that returned, plus at most the two in flight', async () => {
    const mgr = manager()
    const main = mgr.createBuffer('main', 'hot', 'shared')
    main.write('hot', 0, g)
    for (let round = 0; round < 4; round++) {
      const flags = new Int32Array(new SharedArrayBuffer(12))
      const before = main.read<number>('hot', g)!
      const ws = [1, 2].map((flag) =>
        spawn(mgr, 'hotUpdate', { key: 'hot', step: 1, flag, signalAfter: 300 + round * 200 }, flags),
      )
      await Atomics.waitAsync(flags, 0, 0).value
      for (const w of ws) {
        const tid = w.worker.threadId
        await w.worker.terminate()
        mgr.threadExited(tid)
      }
      const lost = main.read<number>('hot', g)! - before - (flags[1]! + flags[2]!)
      expect(lost).toBeGreaterThanOrEqual(0)
      expect(lost).toBeLessThanOrEqual(2)
      expect(mgr.engine.lockOwner()).toBe(-1)
      expect(mgr.engine.audit()).toEqual([])
    }
  })
})

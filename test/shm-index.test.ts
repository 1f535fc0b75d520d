import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { ShmStore } from '../src/shm/index.js'
import { commit, op, read, runShm } from './helpers/shm.js'

const main = { threadId: 0, isMainThread: true, mainSpinMs: 2000 }
const small = (maxKeys: number) =>
  ShmStore.create({ maxBytes: 4 << 20, maxKeys, historySize: 4, maxKeyBytes: 64, maxMetaBytes: 64 }, main)

/** The index's move counter (the word after the last slot): how many commits moved keys, ×2. */
function moves(store: ShmStore): number {
  const a = new Int32Array(store.handles.index)
  return a[a.length - 16]!
}

describe('hash index', () => {
  it('is sized for maxKeys live keys plus as many group heads: one key per group fills maxKeys exactly', () => {
    const store = small(1000)
    for (let g = 0; g < 1000; g++) expect(commit(store, op(`g${g}:`, 'k', g))).toBe(0)
    expect(store.stats().keys).toBe(1000)
    // The 1001st key is refused for maxKeys, not for the index.
    expect(commit(store, op('g1000:', 'k', 1))).toBe(4 /* FULL_KEYS */)
    expect(store.stats().indexSlotsInUse).toBe(2000)
    expect(store.audit()).toEqual([])
  })

  it('unique-key churn leaves no tombstones: slots in use return to live keys + heads after every commit', () => {
    const store = small(1000)
    for (let i = 0; i < 40; i++) commit(store, op('live:', `k${i}`, i))
    // 600 000 unique keys through a 1000-key store (the old index filled after ~560 000 with 40 live).
    let failed = 0
    for (let i = 0; i < 600_000; i++) {
      const w = op('churn:', `u${i}`, i)
      failed += commit(store, w)
      w.del = true
      failed += commit(store, w)
    }
    expect(failed).toBe(0)
    const s = store.stats()
    expect(s.keys).toBe(40)
    expect(s.indexSlotsInUse).toBe(41)
    for (let i = 0; i < 40; i++) expect(read(store, 'live:', `k${i}`)).toBe(i)
    expect(store.audit()).toEqual([])
  })

  it('any interleaving of inserts and deletes keeps every live key reachable and nothing else (model)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 0, max: 79 }), fc.integer({ min: 0, max: 3 })), {
          maxLength: 400,
        }),
        (steps) => {
          const store = small(64)
          const model = new Map<string, number>()
          for (const [del, k, g] of steps) {
            const name = `k${k}`
            const group = `g${g}:`
            const id = group + name
            if (del || model.size >= 64) {
              expect(commit(store, op(group, name, undefined))).toBe(0)
              model.delete(id)
            } else {
              expect(commit(store, op(group, name, k))).toBe(0)
              model.set(id, k)
            }
          }
          for (let g = 0; g < 4; g++)
            for (let k = 0; k < 80; k++) expect(read(store, `g${g}:`, `k${k}`)).toBe(model.get(`g${g}:k${k}`))
          expect(store.stats().keys).toBe(model.size)
          expect(store.audit()).toEqual([])
        },
      ),
      { numRuns: 60, seed: 1313 },
    )
  })

  it('a multi-key commit whose deletes move its other keys reports their new slots', () => {
    const store = small(64)
    for (let i = 0; i < 60; i++) commit(store, op('a:', `k${i}`, i))
    for (let round = 0; round < 50; round++) {
      const del = op('a:', `k${round}`, undefined)
      const up = op('a:', `k${round + 1}`, 1000 + round)
      expect(store.commit([del, up], [], new Uint8Array(0))).toBe(0)
      // The written key's reported version (slot, seq) is where a lock-free read finds it now.
      expect(read(store, 'a:', `k${round + 1}`)).toBe(1000 + round)
      expect(up.outSlot).toBeGreaterThanOrEqual(0)
      const words = new Int32Array(store.handles.index)
      expect(words[up.outSlot * 16 + 1]).toBe(up.outSeq)
      expect(words[up.outSlot * 16 + 4]).toBe(1000 + round)
      commit(store, op('a:', `k${round}`, round))
    }
    expect(store.audit()).toEqual([])
  })

  it('lock-free readers on two threads never miss a present key, never find an absent one, and read whole groups, while churn on a third moves keys', async () => {
    const store = small(64)
    for (let i = 0; i < 16; i++) commit(store, op('s:', `s${i}`, i))
    const before = moves(store)
    const [r1, r2, w] = await runShm(store, [
      { scenario: 'indexReader', params: { threads: 3, group: 's:', stable: 16 } },
      { scenario: 'indexReader', params: { threads: 3, group: 's:', stable: 16 } },
      {
        scenario: 'churn',
        params: {
          threads: 3,
          seed: 7,
          group: 'c:',
          prefix: 'u',
          ops: 60_000,
          minLive: 1,
          maxLive: 44,
          phase: 500,
          maxSize: 0,
        },
      },
    ])
    expect(w).toMatchObject({ ops: 60_000, live: 0, bad: 0 })
    for (const r of [r1, r2]) {
      expect(r.wrong).toBe(0)
      expect(r.wrongGroups).toBe(0)
      expect(r.reads).toBeGreaterThan(1000)
      expect(r.groupReads).toBeGreaterThan(10)
    }
    // The churn really moved keys while the readers ran (two counter steps per moving commit).
    expect((moves(store) - before) / 2).toBeGreaterThan(1000)
    expect(store.stats().keys).toBe(16)
    expect(store.stats().indexSlotsInUse).toBe(17)
    expect(store.audit()).toEqual([])
  })
})

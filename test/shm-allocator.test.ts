import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { StateCapacityError } from '../src/errors.js'
import { ALLOCATOR_WORDS, BlockAllocator, sizeClassFor } from '../src/shm/allocator.js'
import { ShmStore } from '../src/shm/index.js'
import { journalBytes, UndoJournal } from '../src/shm/journal.js'
import { SharedBufferManager } from '../src/state/index.js'
import { prng } from './helpers/prng.js'
import { commit, isPattern, op, pattern, read, runShm } from './helpers/shm.js'

/** A bare allocator over a growable region of up to `maxBytes`, with its own journal. */
function bare(maxBytes: number) {
  const ctrl = new Int32Array(new SharedArrayBuffer(ALLOCATOR_WORDS * 4))
  const data = new SharedArrayBuffer(4096, { maxByteLength: maxBytes })
  const log = new Int32Array(new SharedArrayBuffer(journalBytes(1 << 16)))
  UndoJournal.initialize(log, 1 << 16)
  const journal = new UndoJournal(log, [ctrl, new Int32Array(data)])
  BlockAllocator.initialize(ctrl, 0)
  const heap = new BlockAllocator(data, ctrl, 0, 0, 1, journal)
  /** Runs `fn` as one committed step. */
  const step = <T>(fn: () => T): T => {
    journal.begin()
    const r = fn()
    journal.commitPoint()
    journal.finish()
    return r
  }
  return { ctrl, data, journal, heap, step }
}

const blockOf = (heap: BlockAllocator, b: number) => [b, heap.i32[2 * b]!] as [number, number]

describe('block allocator (buddy)', () => {
  it('memory freed as small blocks serves one block of the whole region: 4 000-byte fill, free all, 1 MiB', () => {
    const { heap, step } = bare(8 << 20)
    const blocks: number[] = []
    for (;;) {
      try {
        blocks.push(step(() => heap.alloc(4000)))
      } catch {
        break
      }
    }
    expect(blocks.length).toBeGreaterThan(1500)
    for (const b of blocks) step(() => heap.free(b))
    expect(heap.usedBytes()).toBe(0)
    expect(heap.audit([])).toEqual([])
    const top = heap.topBytes()
    // Four 1 MiB values (2 MiB blocks with their headers) in the space the 4 000-byte blocks used.
    const big = [0, 1, 2].map(() => step(() => heap.alloc(1 << 20)))
    expect(heap.topBytes()).toBe(top)
    expect(heap.audit(big.map((b) => blockOf(heap, b)))).toEqual([])
  })

  it('any sequence of allocations and frees keeps the region tiled, buddies merged and used exact; freeing all merges back', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 0, max: 70_000 }), fc.nat()), { maxLength: 300 }),
        (steps) => {
          const { heap, step } = bare(16 << 20)
          const live: number[] = []
          let used = 0
          for (const [free, size, pick] of steps) {
            if (free && live.length > 0) {
              const b = live.splice(pick % live.length, 1)[0]!
              used -= 16 << heap.i32[2 * b]!
              step(() => heap.free(b))
            } else {
              const b = step(() => heap.alloc(size))
              expect(heap.blockLength(b)).toBe(size)
              // At most 2× per block, header included.
              expect(16 << heap.i32[2 * b]!).toBeLessThan(2 * (size + 8) + 16)
              used += 16 << sizeClassFor(size + 8)
              live.push(b)
            }
          }
          expect(heap.usedBytes()).toBe(used)
          expect(heap.audit(live.map((b) => blockOf(heap, b)))).toEqual([])
          for (const b of live) step(() => heap.free(b))
          expect(heap.usedBytes()).toBe(0)
          expect(heap.audit([])).toEqual([])
        },
      ),
      { numRuns: 80, seed: 2026 },
    )
  })

  it('a rolled-back allocation or free leaves every allocator word and block header as it was', () => {
    const { ctrl, data, journal, heap, step } = bare(4 << 20)
    const rnd = prng(5)
    const live: number[] = []
    for (let i = 0; i < 200; i++) live.push(step(() => heap.alloc(Math.floor(rnd() * 5000))))
    for (let i = 0; i < 100; i++) step(() => heap.free(live.splice(Math.floor(rnd() * live.length), 1)[0]!))
    for (let i = 0; i < 200; i++) {
      const before = { ctrl: ctrl.slice(), data: new Int32Array(data).slice(0, heap.topBytes() / 4) }
      journal.begin()
      if (i % 2 === 0) {
        const b = heap.alloc(Math.floor(rnd() * 100_000))
        heap.u8.fill(0xab, heap.payloadOffset(b), heap.payloadOffset(b) + heap.blockLength(b))
      } else heap.free(live[Math.floor(rnd() * live.length)]!)
      journal.rollback()
      expect(ctrl).toEqual(before.ctrl)
      // Headers and links below the old top are restored (payload bytes of live blocks were not touched).
      const after = new Int32Array(data).slice(0, before.data.length)
      for (const b of live)
        expect([after[2 * b], after[2 * b + 1]]).toEqual([before.data[2 * b], before.data[2 * b + 1]])
      expect(heap.audit(live.map((b) => blockOf(heap, b)))).toEqual([])
    }
  })

  it('threads committing values of random sizes leave exact key and byte counts (audit) after the data region grew under them', async () => {
    const store = ShmStore.create(
      { maxBytes: 8 << 20, maxKeys: 2000, historySize: 4, maxKeyBytes: 64, maxMetaBytes: 64 },
      { threadId: 0, isMainThread: true, mainSpinMs: 2000 },
    )
    const churn = (seed: number, group: string) => ({
      scenario: 'churn',
      params: {
        threads: 3,
        seed,
        group,
        prefix: 'v',
        ops: 8_000,
        minLive: 10,
        maxLive: 400,
        phase: 1000,
        maxSize: 9000,
        keep: true,
      },
    })
    const results = await runShm(store, [churn(1, 'a:'), churn(2, 'b:'), churn(3, 'c:')])
    let live = 0
    for (const r of results) {
      expect(r.bad).toBe(0)
      live += r.live
    }
    expect(store.stats().keys).toBe(live)
    expect(store.audit()).toEqual([])
  })
})

describe('state values and the value region', () => {
  it('a 32 MiB store filled with 4 000-byte values, then emptied, takes a 1 MB value', () => {
    const mgr = SharedBufferManager.create({
      maxBytes: 32 << 20,
      maxKeys: 20_000,
      historySize: 10,
      maxValueBytes: 2 << 20,
    })
    const buf = mgr.createBuffer('e', 's', 'shared')
    const g = { scope: 'global' as const }
    const body = 'x'.repeat(4000 - 10)
    let n = 0
    for (; ; n++) {
      try {
        buf.write(`k${n}`, body, g)
      } catch (err) {
        expect(err).toBeInstanceOf(StateCapacityError)
        expect((err as Error).message).toMatch(/data bytes full/)
        break
      }
    }
    expect(n).toBeGreaterThan(5000)
    for (let i = 0; i < n; i++) buf.delete(`k${i}`, g)
    expect(mgr.stats().bytesUsed).toBe(0)
    const big = 'y'.repeat(1_000_000)
    buf.write('big', big, g)
    expect(buf.read('big', g)).toBe(big)
    expect(mgr.engine.audit()).toEqual([])
  })

  it('raw large values round-trip exactly through the store', () => {
    const store = ShmStore.create(
      { maxBytes: 16 << 20, maxKeys: 100, historySize: 4, maxKeyBytes: 64, maxMetaBytes: 64 },
      { threadId: 0, isMainThread: true, mainSpinMs: 2000 },
    )
    for (const size of [0, 1, 8, 9, 4000, 65_536, 1_000_000, 3_000_000]) {
      expect(commit(store, op('g:', `s${size}`, pattern(size, size)))).toBe(0)
      const v = read(store, 'g:', `s${size}`) as Uint8Array
      expect(v.length).toBe(size)
      expect(isPattern(v)).toBe(true)
    }
    expect(store.audit()).toEqual([])
  })
})

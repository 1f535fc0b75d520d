import { describe, expect, it } from 'vitest'
import { FrameRing } from '../src/shm/frame-ring.js'
import { ShmStore } from '../src/shm/index.js'
import { journalBytes, UndoJournal } from '../src/shm/journal.js'
import { AtomicsLock, DEAD_TABLE_WORDS, DeadThreadTable, LOCK_WORDS } from '../src/shm/lock.js'
import { startStructureWorker } from './helpers/shm.js'

const tick = () => new Promise<void>((r) => setImmediate(r))

describe('frame ring across threads', () => {
  it('delivers every frame of a producer thread in order and whole, through wrap-arounds and a full ring', async () => {
    const capacity = 4096
    const sab = new SharedArrayBuffer(FrameRing.byteLength(capacity))
    const ring = FrameRing.initialize(sab, 0, capacity)
    const frames = 20_000
    const w = startStructureWorker('ringProducer', { sab, capacity, frames, maxFrame: 700, seed: 11 })
    let next = 0
    let bytes = 0
    let bad = 0
    let done = false
    w.result.then(
      () => (done = true),
      () => (done = true),
    )
    while (next < frames) {
      const got = ring.read((f) => {
        const n = new DataView(f.buffer, f.byteOffset, 4).getInt32(0, true)
        if (n !== next) bad++
        for (let i = 4; i < f.length; i++) if (f[i] !== ((n + i) & 0xff)) bad++
        bytes += f.length
        next++
      })
      if (got === 0) {
        if (done && ring.isEmpty()) break
        await tick()
      }
    }
    const r = await w.result
    expect(bad).toBe(0)
    expect(next).toBe(frames)
    expect(bytes).toBe(r.bytes)
    // The ring was small enough that the producer met it full and waited.
    expect(r.full).toBeGreaterThan(0)
    await w.worker.terminate()
  })
})

describe('commit lock across threads', () => {
  const words = () => new Int32Array(new SharedArrayBuffer((LOCK_WORDS + DEAD_TABLE_WORDS + 8) * 4))
  const counterAt = LOCK_WORDS + DEAD_TABLE_WORDS

  it('three threads incrementing a plain word under the lock, with seeded pauses inside, lose nothing', async () => {
    const i32 = words()
    AtomicsLock.initialize(i32, 0)
    const n = 30_000
    const ws = [1, 2, 3].map((seed) =>
      startStructureWorker('lockCounter', { words: i32, counterAt, n, seed, threads: 3 }),
    )
    await Promise.all(ws.map((w) => w.result))
    expect(i32[counterAt]).toBe(3 * n)
    expect(Atomics.load(i32, 0)).toBe(0)
    await Promise.all(ws.map((w) => w.worker.terminate()))
  })

  it('a thread that dies holding the lock is taken over once its death is recorded; the survivors lose nothing', async () => {
    const i32 = words()
    AtomicsLock.initialize(i32, 0)
    const dead = new DeadThreadTable(i32, LOCK_WORDS)
    const n = 10_000
    const dieAt = 200
    const dying = startStructureWorker('lockCounter', {
      words: i32,
      counterAt,
      n,
      seed: 9,
      threads: 3,
      dieAt,
    })
    // Captured now: a worker's threadId reads -1 once it has exited.
    const dyingId = dying.worker.threadId
    dying.worker.once('exit', () => dead.add(dyingId))
    const ws = [1, 2].map((seed) =>
      startStructureWorker('lockCounter', { words: i32, counterAt, n, seed, threads: 3 }),
    )
    expect(await dying.exited).toBe(3)
    await Promise.all(ws.map((w) => w.result))
    // The dead thread completed `dieAt` increments; the next one read the counter and never wrote it.
    expect(i32[counterAt]).toBe(2 * n + dieAt)
    // Whoever comes next gets the lock: free, or taken over from the dead holder (on a loaded machine the
    // survivors may have finished before it died).
    const main = new AtomicsLock(i32, 0, dead, 0, 2000, true)
    expect(main.acquire()).toBe(true)
    main.release()
    expect(Atomics.load(i32, 0)).toBe(0)
    await Promise.all(ws.map((w) => w.worker.terminate()))
  })
})

describe('undo journal across threads', () => {
  it.each([
    [1, 1],
    [2, 4],
    [3, 6],
    [4, -1],
  ])(
    'a thread that exits at entry %i·%i of a commit is rolled back or completed exactly: the bank total holds',
    async (seed, exitAt) => {
      const accounts = 16
      const bank = new Int32Array(new SharedArrayBuffer(accounts * 4)).fill(1000)
      const log = new Int32Array(new SharedArrayBuffer(journalBytes(256)))
      UndoJournal.initialize(log, 256)
      const w = startStructureWorker('journalBank', {
        bank,
        log,
        accounts,
        seed,
        commits: 5_000,
        exitCommit: 1_000 * seed,
        exitAt,
      })
      expect(await w.exited).toBe(4)
      const journal = new UndoJournal(log, [bank])
      expect(journal.recover()).toBe(exitAt === -1 ? 'completed' : 'rolled_back')
      expect(bank.reduce((a, b) => a + b, 0)).toBe(accounts * 1000)
    },
  )
})

describe('history ring across threads', () => {
  it('readers on two threads never see a torn entry while a writer thread wraps the ring many times', async () => {
    const store = ShmStore.create(
      { maxBytes: 8 << 20, maxKeys: 20_000, historySize: 64, maxKeyBytes: 64, maxMetaBytes: 64 },
      { threadId: 0, isMainThread: true, mainSpinMs: 2000 },
    )
    const flags = new Int32Array(new SharedArrayBuffer(8))
    const common = { handles: store.handles, flags, group: 'h:', maxSize: 200 }
    const readers = [1, 2].map(() => startStructureWorker('historyReader', { ...common, limit: 64 }))
    const writer = startStructureWorker('historyWriter', { ...common, commits: 15_000 })
    expect(await writer.result).toEqual({ commits: 15_000 })
    for (const r of readers) {
      const res = await r.result
      expect(res.torn).toBe(0)
      expect(res.backwards).toBe(0)
      expect(res.entries).toBeGreaterThan(0)
    }
    const last = store.history(64)
    expect(last).toHaveLength(64)
    expect(last[0]!.version).toBe(store.version())
    await Promise.all([writer, ...readers].map((w) => w.worker.terminate()))
  })
})

import { afterEach, describe, expect, it } from 'vitest'
import { ShmStore } from '../src/shm/index.js'
import { SharedBufferManager } from '../src/state/index.js'
import { api, startRuntime } from './helpers/runtime.js'
import { commit, op, pattern, read, runShm } from './helpers/shm.js'

/** A soak key's name: its id's decimal digits, least significant first (as the soak writes them). */
const digits = (id: number) => [...String(id)].reverse().join('')

const cleanups: (() => Promise<void>)[] = []
afterEach(async () => {
  for (const fn of cleanups.splice(0)) await fn()
})

describe('churn soak: the store does not wear', () => {
  it('tens of millions of operations of unique-key churn from three threads and the main thread, live sets 1 %–90 % of maxKeys, end with no error, no leak and a clean audit', async () => {
    const maxKeys = 3000
    const store = ShmStore.create(
      { maxBytes: 16 << 20, maxKeys, historySize: 16, maxKeyBytes: 64, maxMetaBytes: 64 },
      { threadId: 0, isMainThread: true, mainSpinMs: 5000 },
    )
    const opsPerThread = 4_000_000
    const soak = (seed: number) => ({
      scenario: 'soak',
      // Each thread's live set sweeps between 1 % and 90 % of its third of maxKeys, four times over.
      params: {
        threads: 3,
        seed,
        group: `t${seed}:`,
        ops: opsPerThread,
        minLive: 10,
        maxLive: 900,
        phase: opsPerThread / 4,
        maxSize: 3000,
        leave: 25,
      },
    })
    const running = runShm(store, [soak(1), soak(2), soak(3)])
    // The main thread churns alongside, between turns of its event loop.
    let mainOps = 0
    let mainFailed = 0
    const mainLoop = async () => {
      for (let round = 0; round < 200; round++) {
        for (let i = 0; i < 500; i++) {
          const n = round * 500 + i
          mainFailed += commit(store, op('main:', `m${n}`, pattern(n, (n * 37) % 2000)))
          if (n >= 60) mainFailed += commit(store, op('main:', `m${n - 60}`, undefined))
          mainOps += 2
        }
        await new Promise((r) => setImmediate(r))
      }
    }
    const [results] = await Promise.all([running, mainLoop()])
    expect(mainFailed).toBe(0)
    let ops = mainOps
    let live = 60
    for (const r of results) {
      expect(r.bad).toBe(0)
      expect(r.commits).toBe(opsPerThread)
      ops += r.commits + r.reads
      live += r.live
    }
    expect(ops).toBeGreaterThan(17_000_000)
    // No leak: the counters are back to the live set, every live key reads back, the audit is clean.
    const s = store.stats()
    expect(s.keys).toBe(live)
    expect(s.indexSlotsInUse).toBe(live + 4)
    for (const [t, r] of results.entries())
      for (const id of r.liveIds as number[]) expect(read(store, `t${t + 1}:`, digits(id))).toBeDefined()
    expect(store.audit()).toEqual([])
    // Every key deleted: nothing stays allocated.
    for (const [t, r] of results.entries())
      for (const id of r.liveIds as number[])
        expect(commit(store, op(`t${t + 1}:`, digits(id), undefined))).toBe(0)
    for (let n = 100_000 - 60; n < 100_000; n++)
      expect(commit(store, op('main:', `m${n}`, undefined))).toBe(0)
    expect(store.stats()).toMatchObject({ keys: 0, bytesUsed: 0, indexSlotsInUse: 0 })
    expect(store.audit()).toEqual([])
  }, 300_000)

  it('with 5 000 keys resident, executions that write and delete 50 stream keys each never exhaust a 10 000-key store (6 000 executions)', () => {
    const mgr = SharedBufferManager.create({ maxBytes: 16 << 20, maxKeys: 10_000, historySize: 10 })
    const g = { scope: 'stream' as const }
    const resident = mgr.createBuffer('resident', 'resident', 'shared')
    for (let i = 0; i < 5000; i++) resident.write(`r${i}`, i, { scope: 'global' })
    for (let e = 0; e < 6000; e++) {
      const buf = mgr.createBuffer(`e${e}`, `stream-${e % 7}`, 'shared')
      for (let i = 0; i < 50; i++) buf.write(`e${e}:${i}`, i, g)
      for (let i = 0; i < 50; i++) buf.delete(`e${e}:${i}`, g)
      mgr.cleanupExecution(`e${e}`)
    }
    // The resident keys and their one group head, nothing else.
    expect(mgr.stats()).toMatchObject({ keys: 5000, bytesUsed: 0, indexSlotsInUse: 5001 })
    expect(resident.read('r4999', { scope: 'global' })).toBe(4999)
    expect(mgr.engine.audit()).toEqual([])
  })

  it('a slice through the runtime: 400 executions churning 50 stream keys each leave the store at zero', async () => {
    const rt = await startRuntime(
      {
        entryPoints: [api('churn', 'stream-churn', { maxConcurrent: 10 })],
        state: { maxBytes: 16 << 20, maxKeys: 1000 },
      },
      (fn) => cleanups.push(fn),
    )
    const results = await Promise.all(
      Array.from({ length: 400 }, (_, i) => rt.triggerAndWait('churn', { keys: 50, size: 97 + i })),
    )
    const notOk = results.filter((r) => r.status !== 'completed' || r.output !== 0)
    expect(notOk.map((r) => [r.status, r.output, r.error?.message]).slice(0, 3)).toEqual([])
    expect(rt.state.stats()).toMatchObject({ keys: 0, bytesUsed: 0, indexSlotsInUse: 0 })
    expect(rt.state.engine.audit()).toEqual([])
  })
})

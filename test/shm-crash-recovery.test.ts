import { describe, expect, it } from 'vitest'
import { SharedBufferManager } from '../src/state/index.js'
import { spawn } from './fixtures/state-threads.js'

const ACCOUNTS = 16
const TOTAL = ACCOUNTS * 1000

function bank(): SharedBufferManager {
  const mgr = SharedBufferManager.create({ maxBytes: 16 << 20, maxKeys: 1024, historySize: 50 })
  const setup = mgr.createBuffer('setup', 'bank', 'shared')
  for (let k = 0; k < ACCOUNTS; k++) setup.write(`acct:${k}`, 1000, { scope: 'global' })
  return mgr
}

/** Every invariant a crash must not break. */
function expectIntact(mgr: SharedBufferManager): void {
  expect(mgr.engine.lockOwner()).toBe(-1)
  // Index, group lists, counters and allocator agree with each other (no leaked or doubly owned block).
  expect(mgr.engine.audit()).toEqual([])
  const buf = mgr.createBuffer('audit', 'bank', 'shared')
  const all = buf.readAll({ scope: 'global' }) as Record<string, any>
  let sum = 0
  for (let k = 0; k < ACCOUNTS; k++) sum += all[`acct:${k}`]
  expect(sum).toBe(TOTAL)
  for (const [key, v] of Object.entries(all)) {
    if (key.startsWith('pad:')) expect(v.sum).toBe(v.n * 31 + v.body.length)
  }
  expect(mgr.stats().keys).toBe(Object.keys(all).length)
  // The lock is usable and the structures are whole: a fresh transfer commits on the main thread.
  buf.transaction((tx) => {
    tx.update('acct:0', (v: number | undefined) => v! - 1, { scope: 'global' })
    tx.update('acct:1', (v: number | undefined) => v! + 1, { scope: 'global' })
  })
  expect(buf.read('acct:0', { scope: 'global' })).toBe(all['acct:0'] - 1)
}

describe('a thread dying in the middle of a commit', () => {
  // Journal entry counts inside one transfer commit (3 keys): early, middle, late, and -1 = just after the commit point.
  for (const crashAt of [1, 4, 9, 15, 22, -1]) {
    it(`process.exit at journal entry ${crashAt} of a transfer: threadExited() frees the lock and the total is conserved`, async () => {
      const mgr = bank()
      const w = spawn(mgr, 'bankForever', { seed: 7, accounts: ACCOUNTS, crashCommit: 40, crashAt })
      const tid = w.worker.threadId
      expect(await w.exited).toBe(3)
      // It died holding the lock, mid-commit.
      expect(mgr.engine.lockOwner()).toBe(tid)
      expect(mgr.threadExited(tid)).toBe(crashAt === -1 ? 'completed' : 'rolled_back')
      expectIntact(mgr)
      expect(mgr.threadExited(tid)).toBe('idle') // idempotent
      expect(mgr.engine.lockOwner()).toBe(-1)
    })
  }

  it('worker.terminate() at arbitrary points while two threads transfer: after threadExited() nothing is lost or locked', async () => {
    const mgr = bank()
    const outcomes: string[] = []
    for (let round = 0; round < 4; round++) {
      const flags = [new Int32Array(new SharedArrayBuffer(8)), new Int32Array(new SharedArrayBuffer(8))]
      const ws = flags.map((f, i) =>
        spawn(mgr, 'bankForever', { seed: round * 10 + i, accounts: ACCOUNTS }, f),
      )
      const ids = ws.map((w) => w.worker.threadId)
      // Both threads are committing (200 transfers each) before the first is killed.
      await Promise.all(flags.map((f) => Atomics.waitAsync(f, 0, 0).value))
      await ws[0]!.worker.terminate()
      outcomes.push(mgr.threadExited(ids[0]!))
      await new Promise((r) => setTimeout(r, round))
      await ws[1]!.worker.terminate()
      outcomes.push(mgr.threadExited(ids[1]!))
      expectIntact(mgr)
    }
    expect(outcomes).toHaveLength(8)
  })
})

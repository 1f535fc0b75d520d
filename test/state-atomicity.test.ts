import { describe, expect, it } from 'vitest'
import { SharedBufferManager } from '../src/state/index.js'
import { runAll, spawn } from './fixtures/state-threads.js'

const THREADS = 3

function manager(): SharedBufferManager {
  return SharedBufferManager.create({ maxBytes: 16 << 20, maxKeys: 4096, historySize: 100 })
}

/**
 * Two threads make `transfers` bank transfers each among `accounts` accounts of 100 while one auditor thread
 * per `auditors` entry (its `audit` scenario params) sums them with readAll: every audit finds the total.
 */
async function auditWhileTransferring(
  accounts: number,
  transfers: number,
  auditors: Record<string, unknown>[],
): Promise<void> {
  const mgr = manager()
  const setup = mgr.createBuffer('setup', 'bank', 'shared')
  for (let k = 0; k < accounts; k++) setup.write(`acct:${k}`, 100, { scope: 'global' })
  const total = accounts * 100
  const flags = new Int32Array(new SharedArrayBuffer(8))
  const spawned = auditors.map((p) => spawn(mgr, 'audit', { total, accounts, ...p }, flags))
  try {
    await runAll(
      mgr,
      'bank',
      Array.from({ length: 2 }, (_, t) => ({ level: 'shared', seed: 5 + t, accounts, transfers, total })),
    )
    Atomics.store(flags, 0, 1)
    for (const r of await Promise.all(spawned.map((a) => a.result))) {
      expect(r.audits).toBeGreaterThan(0)
      expect(r.bad).toBe(0)
    }
  } finally {
    await Promise.all(spawned.map((a) => a.worker.terminate()))
  }
  const all = setup.readAll({ scope: 'global' }) as Record<string, number>
  expect(Object.values(all).reduce((a, b) => a + b, 0)).toBe(total)
}

describe('update() and transaction() are exact across threads', () => {
  for (const level of ['isolated', 'shared', 'synchronized'] as const) {
    it(`update() of one hot key from ${THREADS} threads counts every increment under ${level}`, async () => {
      const mgr = manager()
      const n = 4000
      await runAll(
        mgr,
        'update',
        Array.from({ length: THREADS }, () => ({ level, n, scope: 'global' })),
      )
      expect(mgr.createBuffer('check', 'exact', 'shared').read('n', { scope: 'global' })).toBe(THREADS * n)
    })

    it(`transaction() over two scopes counts every commit under ${level}`, async () => {
      const mgr = manager()
      const n = 1500
      await runAll(
        mgr,
        'transaction',
        Array.from({ length: THREADS }, () => ({ level, n })),
      )
      const check = mgr.createBuffer('check', 'exact', 'shared')
      expect(check.read('a', { scope: 'global' })).toBe(THREADS * n)
      expect(check.read('b', { scope: 'stream' })).toBe(2 * THREADS * n)
    })
  }

  it('a bank transfer transaction over many keys conserves the total under heavy cross-thread contention', async () => {
    const mgr = manager()
    const accounts = 24
    const setup = mgr.createBuffer('setup', 'bank', 'shared')
    for (let k = 0; k < accounts; k++) setup.write(`acct:${k}`, 1000, { scope: 'global' })
    const total = accounts * 1000
    const res = await runAll(
      mgr,
      'bank',
      Array.from({ length: 4 }, (_, t) => ({
        level: 'shared',
        seed: 1000 + t,
        accounts,
        transfers: 6000,
        total,
      })),
    )
    expect(res.map((r) => r.badSnapshots)).toEqual([0, 0, 0, 0])
    const all = setup.readAll({ scope: 'global' }) as Record<string, number>
    expect(Object.keys(all)).toHaveLength(accounts)
    expect(Object.values(all).reduce((a, b) => a + b, 0)).toBe(total)
    expect(Object.values(all).every((v) => v >= 0)).toBe(true)
    expect(mgr.engine.audit()).toEqual([])
  })

  it('readAll() snapshots stay consistent (the bank total holds) while other threads transfer', async () => {
    await auditWhileTransferring(300, 8000, [{ seed: 77 }])
  })

  it('readAll() under isolated is one snapshot too: the bank total holds while the auditor itself and other threads transfer', async () => {
    await auditWhileTransferring(60, 4000, [
      { level: 'isolated', transfer: true, seed: 0 },
      { level: 'isolated', transfer: true, seed: 1 },
    ])
  })

  it('a transaction that throws commits nothing; one that returns a promise is refused', () => {
    const mgr = manager()
    const buf = mgr.createBuffer('e', 's', 'shared')
    buf.write('x', 1, { scope: 'global' })
    expect(() =>
      buf.transaction((tx) => {
        tx.write('x', 2, { scope: 'global' })
        tx.write('y', 2, { scope: 'global' })
        throw new Error('boom')
      }),
    ).toThrow('boom')
    expect(buf.read('x')).toBe(1)
    expect(buf.has('y')).toBe(false)
    expect(() => buf.transaction(async () => 1)).toThrow(
      expect.objectContaining({ code: 'AGENTPOOL_INVALID_ARGUMENT' }),
    )
    expect(() => buf.update('x', async () => 1, { scope: 'global' })).toThrow(
      expect.objectContaining({ code: 'AGENTPOOL_INVALID_ARGUMENT' }),
    )
  })

  it('a transaction that keeps losing races runs under the commit lock and finishes', () => {
    const mgr = manager()
    const buf = mgr.createBuffer('e', 's', 'shared')
    const rival = mgr.createBuffer('rival', 's', 'shared')
    const g = { scope: 'global' as const }
    rival.write('k', 0, g)
    let runs = 0
    const seen = buf.transaction((tx) => {
      runs++
      const v = tx.read<number>('k', g)!
      // A rival commit after every optimistic read: each optimistic attempt conflicts.
      if (runs <= 8) rival.write('k', runs, g)
      tx.write('copy', v, g)
      return v
    })
    expect(runs).toBe(9)
    expect(seen).toBe(8)
    expect(buf.read('copy', g)).toBe(8)
    expect(mgr.engine.lockOwner()).toBe(-1)
    // Under the lock, state calls other than through tx are refused (they would need the lock again).
    let tries = 0
    expect(() =>
      buf.transaction((tx) => {
        tries++
        tx.read('k', g)
        rival.write('k', 100 + tries, g)
      }),
    ).toThrow(expect.objectContaining({ code: 'AGENTPOOL_INVALID_ARGUMENT' }))
    expect(mgr.engine.lockOwner()).toBe(-1)
  })

  it('inside a transaction, reads see its own pending writes and deletes', () => {
    const mgr = manager()
    const buf = mgr.createBuffer('e', 's', 'shared')
    buf.write('k', 'old', { scope: 'stream' })
    const seen = buf.transaction((tx) => {
      tx.write('k', 'new', { scope: 'stream' })
      const a = tx.read('k')
      tx.delete('k', { scope: 'stream' })
      return [a, tx.has('k', { scope: 'stream' })]
    })
    expect(seen).toEqual(['new', false])
    expect(buf.has('k', { scope: 'stream' })).toBe(false)
  })
})

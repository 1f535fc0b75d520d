import { describe, expect, it } from 'vitest'
import { StateCapacityError } from '../src/errors.js'
import { SharedBufferManager } from '../src/state/index.js'
import { runAll } from './fixtures/state-threads.js'

describe('memory under churn and at capacity', () => {
  it('a million overwrites of a working set from two threads keep bytes in use within a small factor of the live data', async () => {
    const mgr = SharedBufferManager.create({ maxBytes: 64 << 20, maxKeys: 4096, historySize: 100 })
    await runAll(mgr, 'churn', [
      { seed: 1, writes: 500_000, keys: 500, maxSize: 300, prefix: 'a' },
      { seed: 2, writes: 500_000, keys: 500, maxSize: 300, prefix: 'b' },
    ])
    const s = mgr.stats()
    expect(s.keys).toBe(1000)
    expect(s.version).toBeGreaterThanOrEqual(1_000_000)
    // Live data: every key and its value, as stored (a self-checking value of up to 300 characters).
    const all = mgr.createBuffer('audit', 'churn', 'shared').readAll({ scope: 'stream' }) as Record<
      string,
      any
    >
    let live = 0
    for (const [k, v] of Object.entries(all)) {
      expect(v.sum).toBe(v.n * 31 + v.body.length)
      live += k.length + v.body.length + 24
    }
    expect(s.bytesUsed).toBeLessThan(3 * live)
    // The high-water mark of the value region stays a small multiple of the live data: freed blocks are reused.
    expect(s.bytesReserved).toBeLessThan(8 * live)
    expect(mgr.engine.audit()).toEqual([])
  })

  it('executions that come and go leave neither keys nor index slots behind', async () => {
    const mgr = SharedBufferManager.create({ maxBytes: 16 << 20, maxKeys: 1024, historySize: 10 })
    await runAll(mgr, 'execChurn', [
      { executions: 8_000, keysPer: 5 },
      { executions: 8_000, keysPer: 5 },
    ])
    const s = mgr.stats()
    expect(s.keys).toBe(0)
    expect(s.bytesUsed).toBe(0)
    // 80 000 keys went through a 1024-key store; tombstones did not pile up.
    expect(s.indexSlotsInUse).toBeLessThan(s.indexSlots / 4)
    expect(mgr.engine.audit()).toEqual([])
  })

  it('keys beyond the per-group key cache read, update, transact and delete exactly', () => {
    const mgr = SharedBufferManager.create({ maxBytes: 16 << 20, maxKeys: 20_000, historySize: 10 })
    const buf = mgr.createBuffer('e', 's', 'shared')
    const g = { scope: 'stream' as const }
    const n = 10_000 // well past the 4096 keys a group caches encoded
    for (let i = 0; i < n; i++) buf.write(`key-${i}`, i, g)
    for (let i = 0; i < n; i++) expect(buf.read(`key-${i}`, g)).toBe(i)
    for (let i = 0; i < n; i += 7) buf.update(`key-${i}`, (v: number | undefined) => v! + n, g)
    buf.transaction((tx) => {
      tx.write('key-9999', tx.read<number>('key-9998', g)! + tx.read<number>('key-9997', g)!, g)
      tx.delete('key-9996', g)
    })
    for (let i = 0; i < n - 4; i++) expect(buf.read(`key-${i}`, g)).toBe(i % 7 === 0 ? i + n : i)
    expect(buf.read('key-9999', g)).toBe(9998 + 9997)
    expect(buf.has('key-9996', g)).toBe(false)
    expect(Object.keys(buf.readAll(g))).toHaveLength(n - 1)
    expect(mgr.engine.audit()).toEqual([])
    for (let i = 0; i < n; i++) buf.delete(`key-${i}`, g)
    expect(mgr.stats().keys).toBe(0)
    expect(mgr.stats().bytesUsed).toBe(0)
    expect(mgr.engine.audit()).toEqual([])
  })

  it('value-region exhaustion is StateCapacityError, nothing half-written, stored data stays readable', () => {
    const mgr = SharedBufferManager.create({
      maxBytes: 2 << 20,
      maxKeys: 4096,
      historySize: 10,
      maxValueBytes: 64 * 1024,
    })
    const buf = mgr.createBuffer('e', 's', 'shared')
    const body = (i: number) => String.fromCharCode(97 + (i % 26)).repeat(20_000)
    let stored = 0
    let err: unknown
    for (; stored < 10_000; stored++) {
      try {
        buf.write(`k${stored}`, { i: stored, body: body(stored) }, { scope: 'stream' })
      } catch (e) {
        err = e
        break
      }
    }
    expect(err).toBeInstanceOf(StateCapacityError)
    expect((err as StateCapacityError).code).toBe('AGENTPOOL_STATE_CAPACITY')
    expect(stored).toBeGreaterThan(10)
    for (let i = 0; i < stored; i++)
      expect(buf.read<any>(`k${i}`, { scope: 'stream' })).toEqual({ i, body: body(i) })
    expect(buf.has(`k${stored}`, { scope: 'stream' })).toBe(false)
    // A multi-key transaction that does not fit commits none of its keys.
    expect(() =>
      buf.transaction((tx) => {
        tx.write('k0', 'small', { scope: 'stream' })
        tx.write('huge', { body: body(1) + body(2) }, { scope: 'stream' })
        tx.write('huge2', { body: body(3) + body(4) }, { scope: 'stream' })
      }),
    ).toThrow(StateCapacityError)
    expect(buf.read<any>('k0', { scope: 'stream' }).i).toBe(0)
    // Deleting makes room again.
    for (let i = 0; i < 5; i++) buf.delete(`k${i}`, { scope: 'stream' })
    buf.write('after', { body: body(9) }, { scope: 'stream' })
    expect(buf.read<any>('after', { scope: 'stream' }).body).toBe(body(9))
    expect(mgr.engine.audit()).toEqual([])
  })

  it('maxKeys exhaustion is StateCapacityError and the stored keys stay readable', () => {
    const mgr = SharedBufferManager.create({ maxBytes: 4 << 20, maxKeys: 100, historySize: 10 })
    const buf = mgr.createBuffer('e', 's', 'shared')
    for (let i = 0; i < 100; i++) buf.write(`k${i}`, i, { scope: 'global' })
    expect(() => buf.write('one-too-many', 1, { scope: 'global' })).toThrow(
      expect.objectContaining({ code: 'AGENTPOOL_STATE_CAPACITY' }),
    )
    buf.write('k5', 'overwrite is fine', { scope: 'global' })
    expect(buf.read('k5', { scope: 'global' })).toBe('overwrite is fine')
    expect(buf.read('k99', { scope: 'global' })).toBe(99)
    expect(mgr.stats().keys).toBe(100)
  })
})

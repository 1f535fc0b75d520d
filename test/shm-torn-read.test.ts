import { describe, expect, it } from 'vitest'
import { SharedBufferManager } from '../src/state/index.js'
import { spawn } from './fixtures/state-threads.js'

describe('lock-free reads across threads', () => {
  it('readers on other threads never see a torn value while a writer keeps replacing a large self-checking value', async () => {
    const mgr = SharedBufferManager.create({ maxBytes: 32 << 20, maxKeys: 1024, historySize: 10 })
    const flags = new Int32Array(new SharedArrayBuffer(16))
    const readers = [spawn(mgr, 'tornReader', {}, flags), spawn(mgr, 'tornReader', {}, flags)]
    const writer = spawn(mgr, 'tornWriter', { rounds: 6000, large: 60000, small: 50000 }, flags)
    try {
      expect((await writer.result).written).toBe(6000)
      const res = await Promise.all(readers.map((r) => r.result))
      for (const r of res) {
        expect(r.reads).toBeGreaterThan(0)
        expect(r.torn).toBe(0)
        // One writer: a reader never sees an older value after a newer one.
        expect(r.backwards).toBe(0)
      }
    } finally {
      await Promise.all([writer, ...readers].map((s) => s.worker.terminate()))
    }
    const final = mgr.createBuffer('check', 'torn', 'shared').read<any>('big', { scope: 'global' })
    expect(final.n).toBe(5999)
  })
})

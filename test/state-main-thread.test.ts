import { describe, expect, it } from 'vitest'
import { StateBusyError } from '../src/errors.js'
import { SharedBufferManager } from '../src/state/index.js'
import { spawn } from './fixtures/state-threads.js'

describe('the main thread never blocks on the state lock', () => {
  it('while a worker holds the commit lock, main-thread reads of other keys answer and a main-thread write gives up with StateBusyError', async () => {
    const mgr = SharedBufferManager.create({ maxBytes: 4 << 20, maxKeys: 64, historySize: 8, mainSpinMs: 20 })
    const main = mgr.createBuffer('main', 'stall', 'shared')
    main.write('other', 1, { scope: 'global' })
    const flags = new Int32Array(new SharedArrayBuffer(8))
    const w = spawn(mgr, 'stallInCommit', {}, flags)
    try {
      await Atomics.waitAsync(flags, 0, 0).value
      expect(mgr.engine.lockOwner()).toBe(w.worker.threadId)
      expect(main.read('other', { scope: 'global' })).toBe(1)
      expect(main.readAll({ scope: 'stream' })).toEqual({})
      let err: unknown
      try {
        main.write('other', 2, { scope: 'global' })
      } catch (e) {
        err = e
      }
      expect(err).toBeInstanceOf(StateBusyError)
      expect((err as StateBusyError).code).toBe('AGENTPOOL_STATE_BUSY')
      expect(main.read('other', { scope: 'global' })).toBe(1)
      Atomics.store(flags, 1, 1)
      Atomics.notify(flags, 1)
      expect((await w.result).done).toBe(true)
    } finally {
      await w.worker.terminate()
    }
    main.write('other', 3, { scope: 'global' })
    expect(main.read('stalled', { scope: 'global' })).toBe('done')
    expect(main.read('other', { scope: 'global' })).toBe(3)
  })

  it('a main-thread cleanup that meets a held lock is retried on a timer and completes', async () => {
    const mgr = SharedBufferManager.create({ maxBytes: 4 << 20, maxKeys: 64, historySize: 8, mainSpinMs: 5 })
    const main = mgr.createBuffer('exec-1', 'stall', 'shared')
    main.write('a', 1)
    main.write('b', 2)
    const flags = new Int32Array(new SharedArrayBuffer(8))
    const w = spawn(mgr, 'stallInCommit', {}, flags)
    let settled: Promise<void> | undefined
    try {
      await Atomics.waitAsync(flags, 0, 0).value
      mgr.cleanupExecution('exec-1') // returns at once: the lock is held
      expect(main.read('a')).toBe(1)
      settled = mgr.cleanupsSettled()
      Atomics.store(flags, 1, 1)
      Atomics.notify(flags, 1)
      await w.result
    } finally {
      await w.worker.terminate()
    }
    await settled
    expect(main.read('a')).toBeUndefined()
    expect(main.read('b')).toBeUndefined()
    expect(mgr.stats().keys).toBe(1) // the worker's 'stalled' key
  })
})

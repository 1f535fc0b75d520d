import { Worker } from 'node:worker_threads'
import { describe, expect, it } from 'vitest'
import { SharedBufferManager } from '../src/state/index.js'
import { prng } from './helpers/prng.js'

const BOOTSTRAP = new URL('./fixtures/state-bootstrap.mjs', import.meta.url)
const ENTRY = new URL('./fixtures/lease-worker.ts', import.meta.url).href
const g = { scope: 'global' as const }

/** Resolves once word 0 of `flags` is at least `n`. */
async function reach(flags: Int32Array, n: number): Promise<void> {
  for (let v = Atomics.load(flags, 0); v < n; v = Atomics.load(flags, 0)) {
    await Atomics.waitAsync(flags, 0, v, 1000).value
  }
}

describe('an execution lease ended by the main thread', () => {
  it('stops every commit of its buffer on another thread at once: what returned is exactly what landed, and its execution scope is freed', async () => {
    const mgr = SharedBufferManager.create({ maxBytes: 4 << 20, maxKeys: 1024, historySize: 10 })
    const flags = new Int32Array(new SharedArrayBuffer(4))
    const worker = new Worker(BOOTSTRAP, { workerData: { entry: ENTRY, handles: mgr.handles, flags } })
    const answers: { updates: number; code: string }[] = []
    let answered: (() => void) | undefined
    worker.on('message', (a) => {
      answers.push(a)
      answered?.()
    })
    const check = mgr.createBuffer('check', 'lease', 'shared')
    const rng = prng(13)
    try {
      let landed = 0
      for (let round = 0; round < 6; round++) {
        const executionId = `lease-${round}`
        const lease = mgr.openLease()
        Atomics.store(flags, 0, 0)
        const answer = new Promise<void>((resolve) => {
          answered = resolve
        })
        worker.postMessage({ lease, executionId })
        await reach(flags, 20 + Math.floor(rng() * 400))
        mgr.endLease(lease, executionId)
        // Nothing of the ended execution remains, nor can a commit admitted before the end bring it back.
        const atEnd = check.read<number>('n', g)!
        expect(mgr.createBuffer(executionId, 'lease', 'shared').readAll({ scope: 'execution' })).toEqual({})
        await answer
        const a = answers[round]!
        expect(a.code).toBe('AGENTPOOL_EXECUTION_ENDED')
        landed += a.updates
        // Every update that returned landed, and none after the end: the counter stopped where they did.
        expect(atEnd).toBe(landed)
        expect(check.read('n', g)).toBe(landed)
        expect(check.read('pair:a', g)).toBe(check.read('pair:b', g))
        mgr.releaseLease(lease, executionId)
      }
      expect(mgr.stats().keys).toBe(3)
      expect(mgr.engine.audit()).toEqual([])
    } finally {
      await worker.terminate()
    }
  })

  it('refuses writes through a released buffer in every scope, and frees nothing it did not use', () => {
    const mgr = SharedBufferManager.create({ maxBytes: 4 << 20, maxKeys: 64, historySize: 10 })
    const buf = mgr.createBuffer('e1', 's', 'shared')
    buf.write('kept', 1, g)
    mgr.releaseBuffer(buf)
    for (const scope of ['execution', 'stream', 'global'] as const) {
      expect(() => buf.write('late', 1, { scope })).toThrow(
        expect.objectContaining({ code: 'AGENTPOOL_EXECUTION_ENDED' }),
      )
    }
    expect(() => buf.update('kept', (n: number | undefined) => n! + 1, g)).toThrow(
      expect.objectContaining({ code: 'AGENTPOOL_EXECUTION_ENDED' }),
    )
    expect(() => buf.transaction((tx) => tx.write('t', 1, g))).toThrow(
      expect.objectContaining({ code: 'AGENTPOOL_EXECUTION_ENDED' }),
    )
    expect(buf.read('kept', g)).toBe(1)
    expect(mgr.stats().keys).toBe(1)
  })
})

import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { describe, expect, it } from 'vitest'
import { AgentRuntime } from '../src/index.js'
import { api } from './helpers/runtime.js'

setFlagsFromString('--expose-gc')
const collectGarbage = runInNewContext('gc') as () => void

/**
 * Starts a runtime, runs executions on its threads, stops it and lets go of it; returns weak references to
 * its state's SharedArrayBuffers and its thread count after the stop.
 */
async function runAndDrop(): Promise<{ refs: WeakRef<SharedArrayBuffer>[]; threadsAfterStop: number }> {
  const rt = new AgentRuntime({
    pool: { threads: 2, tasksPerThread: 2 },
    state: { maxBytes: 64 << 20, maxKeys: 65_536 },
    entryPoints: [api('echo', 'echo')],
  })
  await rt.start()
  await Promise.all(Array.from({ length: 8 }, (_, i) => rt.triggerAndWait('echo', i)))
  const { store, leases, turns } = rt.state.handles
  const refs = [store.control, store.index, store.data, store.journal, store.history, leases, turns].map(
    (b) => new WeakRef(b),
  )
  await rt.stop()
  return { refs, threadsAfterStop: rt.stats().pool.threads }
}

describe('stop()', () => {
  it('stops the pool threads and lets the state shared memory go as soon as the runtime is dropped', async () => {
    const { refs, threadsAfterStop } = await runAndDrop()
    expect(threadsAfterStop).toBe(0)
    // A few collections, a few turns of the event loop apart: nothing may hold the buffers any more (the
    // pool's close timer used to, for 30 s). A deref keeps its target alive to the end of the job, so the
    // collection runs in a turn of its own.
    const tick = () => new Promise((resolve) => setTimeout(resolve, 10))
    let alive = refs.length
    for (let turn = 0; turn < 20 && alive > 0; turn++) {
      await tick()
      collectGarbage()
      await tick()
      alive = refs.filter((r) => r.deref() !== undefined).length
    }
    expect(alive).toBe(0)
  })
})

/**
 * Dispatch against Piscina tuned by hand, in the same run with the same threads: each pool thread runs up
 * to `tasksPerThread` tasks at once on both sides (Piscina's `concurrentTasksPerWorker`), and each
 * iteration keeps `IN_FLIGHT` operations outstanding and waits for all of them — a deep queue, where
 * agentpool carries many executions per pool message.
 *
 * - `dispatch_vs_piscina`: `triggerAndWait` of a no-op handler against `piscina.run()` of a no-op task.
 *   Target 1.5.
 * - `state_dispatch_vs_piscina`: the handler does one `update` of a global key; the Piscina task one
 *   `Atomics.add` on a shared counter. Target 1.2. Both counters are checked against the operations
 *   issued afterwards.
 */
import { availableParallelism } from 'node:os'
import { fileURLToPath } from 'node:url'
import { Piscina } from 'piscina'
import { AgentRuntime } from '../src/index.js'
import { type BenchEntry, compareSideBySide, runFor } from './harness/index.js'
import type { BenchSuite } from './harness/types.js'
import { recordCounter } from './workloads/runtime-records.js'

const IN_FLIGHT = 256
const TASKS_PER_THREAD = 4

const workload = (file: string) => fileURLToPath(new URL(`./workloads/${file}`, import.meta.url))

const suite: BenchSuite = {
  name: 'dispatch',
  async run({ quick, log }) {
    const threads = availableParallelism()
    const counter = new Int32Array(new SharedArrayBuffer(4))
    const piscina = new Piscina({
      filename: workload('noop-worker.mjs'),
      minThreads: threads,
      maxThreads: threads,
      concurrentTasksPerWorker: TASKS_PER_THREAD,
      workerData: { counter },
    })
    const entryPoint = (id: string, file: string) => ({
      id,
      handler: workload(file),
      trigger: { type: 'api' as const },
      maxConcurrent: IN_FLIGHT,
      maxQueue: IN_FLIGHT,
      timeoutMs: 0,
    })
    const runtime = new AgentRuntime({
      pool: { threads, tasksPerThread: TASKS_PER_THREAD },
      entryPoints: [entryPoint('noop', 'noop-handler.mjs'), entryPoint('update', 'update-handler.mjs')],
    })
    await runtime.start()
    const records = recordCounter(runtime)
    const burst = (start: (i: number) => Promise<unknown>) => async () =>
      Promise.all(Array.from({ length: IN_FLIGHT }, (_, i) => start(i)))
    let updates = 0
    let adds = 0
    const plain = burst((i) => piscina.run(i))
    const noop = burst((i) => runtime.triggerAndWait('noop', i))
    const count = burst((i) => {
      adds++
      return piscina.run(i, { name: 'count' })
    })
    const update = burst((i) => {
      updates++
      return runtime.triggerAndWait('update', i)
    })
    try {
      // Every side runs warm before its first measured round (see `runFor`).
      const warmMs = quick ? 800 : 2000
      for (const side of [plain, noop, count, update]) await runFor(warmMs, side)
      const entries: BenchEntry[] = []
      entries.push(
        await compareSideBySide({
          name: 'dispatch_vs_piscina',
          unit: 'executions/s',
          target: 1.5,
          quick,
          log,
          baseline: {
            name: `piscina run(), ${threads} threads × ${TASKS_PER_THREAD} concurrent tasks`,
            opsPerIteration: IN_FLIGHT,
            fn: plain,
          },
          contender: {
            name: `agentpool triggerAndWait, ${threads} threads × ${TASKS_PER_THREAD} tasks`,
            opsPerIteration: IN_FLIGHT,
            records,
            fn: noop,
          },
        }),
      )
      entries.push(
        await compareSideBySide({
          name: 'state_dispatch_vs_piscina',
          unit: 'executions/s',
          target: 1.2,
          quick,
          log,
          baseline: {
            name: `piscina run() doing Atomics.add, ${threads} threads × ${TASKS_PER_THREAD} concurrent tasks`,
            opsPerIteration: IN_FLIGHT,
            fn: count,
          },
          contender: {
            name: `agentpool triggerAndWait doing one global update, ${threads} threads × ${TASKS_PER_THREAD} tasks`,
            opsPerIteration: IN_FLIGHT,
            records,
            fn: update,
          },
        }),
      )
      const dispatched = runtime.state.createBuffer('audit', 'update', 'shared').read('dispatched', {
        scope: 'global',
      })
      if (dispatched !== updates || Atomics.load(counter, 0) !== adds) {
        throw new Error(
          `state_dispatch_vs_piscina lost work: update counter ${dispatched} of ${updates}, Atomics counter ${Atomics.load(counter, 0)} of ${adds}`,
        )
      }
      log(`dispatch: global counter ${dispatched} = updates issued, Atomics counter ${adds} = adds issued`)
      return entries
    } finally {
      await runtime.stop()
      await piscina.close()
    }
  },
}

export default suite

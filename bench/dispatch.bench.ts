/**
 * `dispatch_vs_piscina`: executions per second of `triggerAndWait` on a no-op handler against raw
 * `piscina.run()` of the same no-op, with the same thread count, in the same run. Each iteration keeps
 * `IN_FLIGHT` operations outstanding and waits for all of them, so both sides are measured with a deep
 * queue — where agentpool carries many executions per pool message.
 */
import { availableParallelism } from 'node:os'
import { fileURLToPath } from 'node:url'
import { Piscina } from 'piscina'
import { AgentRuntime } from '../src/index.js'
import { compareSideBySide } from './harness/index.js'
import type { BenchSuite } from './harness/types.js'

const IN_FLIGHT = 256

const suite: BenchSuite = {
  name: 'dispatch',
  async run({ quick, log }) {
    const threads = availableParallelism()
    const piscina = new Piscina({
      filename: fileURLToPath(new URL('./workloads/noop-worker.mjs', import.meta.url)),
      minThreads: threads,
      maxThreads: threads,
    })
    const runtime = new AgentRuntime({
      pool: { threads },
      entryPoints: [
        {
          id: 'noop',
          handler: fileURLToPath(new URL('./workloads/noop-handler.mjs', import.meta.url)),
          trigger: { type: 'api' },
          maxConcurrent: IN_FLIGHT,
          maxQueue: IN_FLIGHT,
          timeoutMs: 0,
        },
      ],
    })
    await runtime.start()
    try {
      const entry = await compareSideBySide({
        name: 'dispatch_vs_piscina',
        unit: 'executions/s',
        target: 1.0,
        quick,
        log,
        baseline: {
          name: `raw piscina run() (${threads} threads)`,
          opsPerIteration: IN_FLIGHT,
          fn: async () => Promise.all(Array.from({ length: IN_FLIGHT }, (_, i) => piscina.run(i))),
        },
        contender: {
          name: `agentpool triggerAndWait (${threads} threads)`,
          opsPerIteration: IN_FLIGHT,
          fn: async () =>
            Promise.all(Array.from({ length: IN_FLIGHT }, (_, i) => runtime.triggerAndWait('noop', i))),
        },
      })
      return [entry]
    } finally {
      await runtime.stop()
      await piscina.close()
    }
  },
}

export default suite

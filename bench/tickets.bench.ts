/**
 * `tickets_vs_single_thread`: support tickets per second through agentpool using every core, against the
 * identical work (same parse and classification code, counter and tally on plain Maps) in a plain loop
 * on one thread, in the same process and run. Target 0.75 × cores (1.5 on 2 cores).
 *
 * Before measuring, it logs how much parallelism the machine gives right now (the ticket loop on plain
 * worker threads, see `workloads/parallel-probe.ts`): on a machine shared with other work that, not
 * agentpool, can be what caps the ratio.
 *
 * One iteration processes a batch of `threads × 128` tickets: all at once through the runtime
 * (`triggerAndWait` each), one after another in the baseline. Both count one operation per ticket. The
 * batch is large so that the barrier at its end (the first thread to finish waits for the last, then for
 * the next batch to arrive) is a small share of the iteration, as it is for a service under steady load.
 */

import { availableParallelism } from 'node:os'
import { type BenchSuite, compareSideBySide } from './harness/index.js'
import { probeParallelism } from './workloads/parallel-probe.js'
import { createPlainStore, processTicketPlain } from './workloads/ticket-baseline.js'
import { processBatch, startTicketRuntime, TicketSource } from './workloads/ticket-runtime.js'

const SEED = 20261125
/** Tickets per thread per iteration: enough that the barrier at the end of a batch costs little. */
const TICKETS_PER_THREAD = 128

const suite: BenchSuite = {
  name: 'tickets',
  async run({ quick, log }) {
    const cores = availableParallelism()
    const batchSize = cores * TICKETS_PER_THREAD
    const ceiling = await probeParallelism(cores, quick ? 300 : 1000, 3)
    log(
      `the same loop on ${cores} plain worker threads runs ×${ceiling.toFixed(2)} of one thread on this machine now (the ceiling of any pool)`,
    )
    log(`starting agentpool with ${cores} threads, batches of ${batchSize} tickets`)
    const runtime = await startTicketRuntime({
      threads: cores,
      tasksPerThread: 4,
      maxConcurrent: batchSize,
      isolation: { stream: 'synchronized', global: 'shared' },
    })
    try {
      const plainSource = new TicketSource(SEED)
      const poolSource = new TicketSource(SEED)
      const store = createPlainStore()
      // Both sides run warm: the pool threads' handler path and the main thread's plain loop are compiled
      // by the optimizing JIT before the first measured round (each round then adds its own warm-up).
      const warm = performance.now() + (quick ? 300 : 1500)
      while (performance.now() < warm) {
        await processBatch(runtime, poolSource.take(batchSize))
        for (const t of plainSource.take(batchSize)) processTicketPlain(t, store)
      }
      const entry = await compareSideBySide({
        name: 'tickets_vs_single_thread',
        unit: 'tickets/s',
        target: 0.75 * cores,
        quick,
        log,
        baseline: {
          name: 'plain loop, one thread',
          opsPerIteration: batchSize,
          fn: () => {
            for (const t of plainSource.take(batchSize)) processTicketPlain(t, store)
          },
        },
        contender: {
          name: `agentpool triggerAndWait, ${cores} threads`,
          opsPerIteration: batchSize,
          fn: async () => processBatch(runtime, poolSource.take(batchSize)),
        },
      })
      return [entry]
    } finally {
      await runtime.stop({ drain: true })
    }
  },
}

export default suite

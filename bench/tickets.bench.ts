/**
 * The ticket workload (parse, classify, two state `update`s, a decision and its outcome), three ways in
 * the same process and run:
 *
 * - `tickets_vs_threads` (the headline): agentpool on N threads against the same ticket loop on N plain
 *   worker threads, each with its own Maps — the plain way to use every core, and the ceiling of any
 *   pool. Target 0.85.
 * - `tickets_vs_single_thread`: agentpool on N threads against the loop on one thread. Target
 *   0.75 × cores (1.5 on 2 cores).
 *
 * One iteration processes a batch of `threads × 128` tickets: all at once through the runtime
 * (`triggerAndWait` each), split evenly over the plain threads, one after another on one thread. Each
 * counts one operation per ticket. The batch is large so that the barrier at its end (the first thread
 * to finish waits for the last, then for the next batch to arrive) is a small share of the iteration, as
 * it is for a service under steady load.
 */

import { availableParallelism } from 'node:os'
import { type BenchSuite, compareSideBySide, runFor, type SideSpec } from './harness/index.js'
import { startPlainTicketThreads } from './workloads/plain-threads.js'
import { recordCounter } from './workloads/runtime-records.js'
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
    log(`starting agentpool and ${cores} plain threads, batches of ${batchSize} tickets`)
    const plainThreads = await startPlainTicketThreads(cores, SEED)
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
      // Every side runs warm, each for its own time (see `runFor`): the runtime's paths on the main and the
      // pool threads, the plain threads' loop and the main thread's loop are compiled by the optimizing JIT
      // before the first measured round (each round then adds its own warm-up).
      await runFor(quick ? 2500 : 4000, () => processBatch(runtime, poolSource.take(batchSize)))
      await runFor(quick ? 300 : 1000, () => plainThreads.process(batchSize))
      await runFor(quick ? 300 : 1000, () => {
        for (const t of plainSource.take(batchSize)) processTicketPlain(t, store)
      })
      const agentpool: SideSpec = {
        name: `agentpool triggerAndWait, ${cores} threads`,
        opsPerIteration: batchSize,
        records: recordCounter(runtime),
        fn: async () => processBatch(runtime, poolSource.take(batchSize)),
      }
      const threads = await compareSideBySide({
        name: 'tickets_vs_threads',
        unit: 'tickets/s',
        target: 0.85,
        quick,
        log,
        baseline: {
          name: `plain loop on ${cores} worker threads`,
          opsPerIteration: batchSize,
          fn: async () => plainThreads.process(batchSize),
        },
        contender: agentpool,
      })
      const single = await compareSideBySide({
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
        contender: agentpool,
      })
      log(
        `tickets: the plain loop on ${cores} threads ran ×${(threads.baseline.hz / single.baseline.hz).toFixed(2)} of one thread (the ceiling of any pool on this machine now)`,
      )
      return [threads, single]
    } finally {
      await runtime.stop({ drain: true })
      await plainThreads.close()
    }
  },
}

export default suite

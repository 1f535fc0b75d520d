/**
 * `serializable_vs_shared`: support tickets per second through agentpool with the stream and global
 * scopes at `serializable`, against the same runtime and tickets at `shared`, in the same process and run.
 * The ticket handler is the one every ticket bench runs (`workloads/ticket-handler.ts`): two `update`s —
 * a stream counter every ticket bumps and a global tally per category — and one decision with its outcome.
 * Under `serializable` those updates are the execution's private writes, validated at its commit, and
 * an execution whose counter read went stale re-runs: the figure prices that.
 *
 * Target 0.9: `serializable` would be the default for stream and global scopes if it cost at most 10 %
 * here (see docs/architecture.md, "Choosing the default level", for the decision and the figure).
 */

import { availableParallelism } from 'node:os'
import { type BenchSuite, compareSideBySide, runFor } from './harness/index.js'
import { processBatch, startTicketRuntime, TicketSource } from './workloads/ticket-runtime.js'

const SEED = 20261204
const TICKETS_PER_THREAD = 128

const suite: BenchSuite = {
  name: 'serializable',
  async run({ quick, log }) {
    const cores = availableParallelism()
    const batchSize = cores * TICKETS_PER_THREAD
    const setting = { threads: cores, tasksPerThread: 4, maxConcurrent: batchSize }
    log(`starting two ticket runtimes (shared, serializable) with ${cores} threads, batches of ${batchSize}`)
    const shared = await startTicketRuntime({ ...setting, isolation: { stream: 'shared', global: 'shared' } })
    const serializable = await startTicketRuntime({
      ...setting,
      isolation: { stream: 'serializable', global: 'serializable' },
    })
    try {
      const sharedSource = new TicketSource(SEED)
      const serialSource = new TicketSource(SEED)
      // Both runtimes run warm before the first measured round (see `runFor`).
      await runFor(quick ? 2000 : 3000, () => processBatch(shared, sharedSource.take(batchSize)))
      await runFor(quick ? 2000 : 3000, () => processBatch(serializable, serialSource.take(batchSize)))
      const entry = await compareSideBySide({
        name: 'serializable_vs_shared',
        unit: 'tickets/s',
        target: 0.9,
        quick,
        log,
        baseline: {
          name: `agentpool, shared, ${cores} threads`,
          opsPerIteration: batchSize,
          fn: async () => processBatch(shared, sharedSource.take(batchSize)),
        },
        contender: {
          name: `agentpool, serializable, ${cores} threads`,
          opsPerIteration: batchSize,
          fn: async () => processBatch(serializable, serialSource.take(batchSize)),
        },
      })
      const s = serializable.stats().streams.tickets!
      log(`serializable: ${s.conflicts} re-runs after conflicts over ${s.completed} tickets`)
      return [entry]
    } finally {
      await shared.stop({ drain: true })
      await serializable.stop({ drain: true })
    }
  },
}

export default suite

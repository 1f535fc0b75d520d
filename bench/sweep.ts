/**
 * `npm run bench:sweep` (`tsx bench/sweep.ts [--quick] [--budget-ms <ms>] [--out-dir <dir>]`): runs the
 * ticket workload over threads, tasksPerThread, maxConcurrent and the three isolation levels (see
 * `src/sweep/plan.ts`), measures throughput, p50/p99 latency, conflict rate and memory per point,
 * names the knees and the best setting within the p99 budget, and writes `sweep.json` and `sweep.svg`.
 *
 * Exit code: 0 done; 2 the sweep failed; 64 bad arguments.
 */

import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import {
  measureRuntimePoint,
  type PlannedPoint,
  type PointDurations,
  pointDurations,
  runSweep,
  type SweepPoint,
  writeSweepReport,
} from '../src/sweep/index.js'
import { EXIT, parseSweepArgs, runCommand, SWEEP_USAGE } from './harness/index.js'
import { startTicketRuntime, TICKET_ENTRY, TicketSource } from './workloads/ticket-runtime.js'

const SEED = 20261125

// A full collection before each point frees what the runtimes measured before it left behind, so their
// garbage is not counted again (RSS can still include memory the allocator has not returned to the system).
// `--expose-gc` is set at run time because `npm run bench:sweep` starts plain tsx.
setFlagsFromString('--expose-gc')
const collectGarbage = runInNewContext('gc') as () => void

async function measurePoint(p: PlannedPoint, durations: PointDurations): Promise<SweepPoint> {
  collectGarbage()
  const runtime = await startTicketRuntime({ ...p, isolation: { stream: p.isolation, global: p.isolation } })
  const source = new TicketSource(SEED)
  return measureRuntimePoint(runtime, TICKET_ENTRY, () => source.next(), p, durations)
}

async function main(argv: readonly string[]): Promise<number> {
  return runCommand(argv, parseSweepArgs, SWEEP_USAGE, async (args) => {
    try {
      const results = await runSweep({
        quick: args.quick,
        budgetMs: args.budgetMs,
        repeat: args.repeat,
        durations: pointDurations(args.quick),
        measure: measurePoint,
        log: (m) => process.stderr.write(`${m}\n`),
      })
      process.stdout.write(await writeSweepReport(results, args.outDir))
      return EXIT.OK
    } catch (err) {
      process.stderr.write(`sweep failed: ${(err as Error).stack ?? String(err)}\n`)
      return EXIT.SUITE_FAILED
    }
  })
}

process.exit(await main(process.argv.slice(2)))

/**
 * `npm run bench:sweep` (`tsx bench/sweep.ts [--quick] [--budget-ms <ms>] [--out-dir <dir>]`): runs the
 * ticket workload over threads, tasksPerThread, maxConcurrent and the three isolation levels (see
 * `harness/sweep-plan.ts`), measures throughput, p50/p99 latency, conflict rate and memory per point,
 * names the knees and the best setting within the p99 budget, and writes `sweep.json` and `sweep.svg`.
 *
 * Exit code: 0 done; 2 the sweep failed; 64 bad arguments.
 */

import { mkdir, writeFile } from 'node:fs/promises'
import { availableParallelism } from 'node:os'
import { join } from 'node:path'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import {
  analyzeSweep,
  combinePasses,
  DEFAULT_TASKS_PER_THREAD,
  describeSetting,
  EXIT,
  findKnee,
  formatHz,
  machineInfo,
  offeredLoad,
  type PlannedPoint,
  type PointDurations,
  parseSweepArgs,
  percentile,
  planMaxConcurrentSeries,
  planTasksPerThreadSeries,
  planThreadSeries,
  pointDurations,
  renderSweepSvg,
  renderTerminalChart,
  runCommand,
  SERIES_LEVEL,
  SWEEP_USAGE,
  type SweepPoint,
  type SweepResults,
  sweepSummary,
} from './harness/index.js'
import { driveClosedLoop, startTicketRuntime, TicketSource } from './workloads/ticket-runtime.js'

const SEED = 20261125
const MiB = 1024 * 1024

// A full collection before each point frees what the runtimes measured before it left behind, so their
// garbage is not counted again (RSS can still include memory the allocator has not returned to the system).
// `--expose-gc` is set at run time because `npm run bench:sweep` starts plain tsx.
setFlagsFromString('--expose-gc')
const collectGarbage = runInNewContext('gc') as () => void

async function measurePoint(p: PlannedPoint, durations: PointDurations): Promise<SweepPoint> {
  collectGarbage()
  const runtime = await startTicketRuntime({ ...p, isolation: { stream: p.isolation, global: p.isolation } })
  try {
    const offered = offeredLoad(p)
    const conflictsBefore = runtime.state.stats().conflicts
    const load = await driveClosedLoop(runtime, {
      inflight: offered,
      ...durations,
      source: new TicketSource(SEED),
    })
    const memory = process.memoryUsage()
    const conflicts = runtime.state.stats().conflicts - conflictsBefore
    return {
      ...p,
      offered,
      throughput: (load.completed * 1000) / load.windowMs,
      p50Ms: percentile(load.latenciesMs, 50),
      p99Ms: percentile(load.latenciesMs, 99),
      completed: load.completed,
      failed: load.failed,
      conflictRate: load.totalCompleted > 0 ? conflicts / load.totalCompleted : 0,
      rssMb: memory.rss / MiB,
      heapUsedMb: memory.heapUsed / MiB,
    }
  } finally {
    await runtime.stop({ drain: true })
  }
}

/**
 * Measures every point of `plan` `repeat` times, every other pass in reverse order so a drift in machine
 * load does not always favour the same end of the series, and combines each point's passes.
 */
async function runSeries(
  plan: PlannedPoint[],
  durations: PointDurations,
  progress: { done: number; repeat: number; log: (m: string) => void },
): Promise<SweepPoint[]> {
  const passes: SweepPoint[][] = plan.map(() => [])
  for (let pass = 0; pass < progress.repeat; pass++) {
    const order = plan.map((_, i) => i)
    if (pass % 2 === 1) order.reverse()
    for (const i of order) {
      const point = await measurePoint(plan[i]!, durations)
      passes[i]!.push(point)
      progress.done++
      progress.log(
        `[${progress.done}] ${describeSetting(point)}: ${formatHz(point.throughput)}/s p50 ${point.p50Ms.toFixed(1)} ms p99 ${point.p99Ms.toFixed(1)} ms conflicts ${(point.conflictRate * 100).toFixed(2)} % failed ${point.failed} rss ${point.rssMb.toFixed(0)} MiB`,
      )
    }
  }
  return passes.map(combinePasses)
}

/** Runs the whole sweep and returns its results. */
async function runSweep(opts: {
  quick: boolean
  budgetMs: number
  repeat: number
  log: (m: string) => void
}): Promise<SweepResults> {
  const startedAt = new Date().toISOString()
  const cores = availableParallelism()
  const durations = pointDurations(opts.quick)
  const progress = { done: 0, repeat: opts.repeat, log: opts.log }
  const threadPoints = await runSeries(planThreadSeries(cores), durations, progress)
  const threads = findKnee(threadPoints.filter((p) => p.isolation === SERIES_LEVEL))?.threads ?? cores
  const tptPoints = await runSeries(planTasksPerThreadSeries(threads, opts.quick), durations, progress)
  const tasksPerThread = findKnee(tptPoints)?.tasksPerThread ?? DEFAULT_TASKS_PER_THREAD
  const mcPoints = await runSeries(
    planMaxConcurrentSeries(threads, tasksPerThread, opts.quick),
    durations,
    progress,
  )
  const points = [...threadPoints, ...tptPoints, ...mcPoints]
  return {
    machine: machineInfo(),
    quick: opts.quick,
    startedAt,
    budgetMs: opts.budgetMs,
    points,
    ...analyzeSweep(points, opts.budgetMs),
  }
}

async function main(argv: readonly string[]): Promise<number> {
  return runCommand(argv, parseSweepArgs, SWEEP_USAGE, async (args) => {
    try {
      const results = await runSweep({
        quick: args.quick,
        budgetMs: args.budgetMs,
        repeat: args.repeat,
        log: (m) => process.stderr.write(`${m}\n`),
      })
      await mkdir(args.outDir, { recursive: true })
      await writeFile(join(args.outDir, 'sweep.json'), `${JSON.stringify(results, null, 2)}\n`)
      await writeFile(join(args.outDir, 'sweep.svg'), renderSweepSvg(results))
      const m = results.machine
      process.stdout.write(
        `\n${m.cpus} cpus, node ${m.node}, ${m.os}${results.quick ? ', quick' : ''}\n${renderTerminalChart(results.points)}\n\n` +
          `${sweepSummary(results).join('\n')}\nwritten: ${join(args.outDir, 'sweep.json')}, ${join(args.outDir, 'sweep.svg')}\n`,
      )
      return EXIT.OK
    } catch (err) {
      process.stderr.write(`sweep failed: ${(err as Error).stack ?? String(err)}\n`)
      return EXIT.SUITE_FAILED
    }
  })
}

process.exit(await main(process.argv.slice(2)))

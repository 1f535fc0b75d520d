/**
 * The sweep itself: the three series one knob at a time (see `plan.ts`), each point measured by a
 * caller-given function, repeated and combined, then analysed. Main thread only.
 *
 * @module
 */
import { availableParallelism } from 'node:os'
import type { IsolationLevel } from '../config/index.js'
import {
  analyzeSweep,
  combinePasses,
  describeSetting,
  findKnee,
  type SweepPoint,
  type SweepResults,
} from './analysis.js'
import { formatHz, machineInfo } from './machine.js'
import {
  DEFAULT_TASKS_PER_THREAD,
  type PlannedPoint,
  type PointDurations,
  planMaxConcurrentSeries,
  planTasksPerThreadSeries,
  planThreadSeries,
  SWEEP_LEVELS,
} from './plan.js'

/** Measures one planned point. */
export type MeasurePoint = (point: PlannedPoint, durations: PointDurations) => Promise<SweepPoint>

export interface SweepOptions {
  quick: boolean
  /** The p99 latency budget, in milliseconds. */
  budgetMs: number
  /** Passes per series; each point's passes are combined by their median. */
  repeat: number
  durations: PointDurations
  /** Isolation levels of the thread series; the last one is the level of the other two series. */
  levels?: readonly IsolationLevel[]
  measure: MeasurePoint
  /** Progress lines. */
  log: (line: string) => void
}

/**
 * Measures every point of `plan` `repeat` times, every other pass in reverse order so a drift in machine
 * load does not always favour the same end of the series, and combines each point's passes.
 */
async function runSeries(
  plan: PlannedPoint[],
  opts: SweepOptions,
  progress: { done: number },
): Promise<SweepPoint[]> {
  const passes: SweepPoint[][] = plan.map(() => [])
  for (let pass = 0; pass < opts.repeat; pass++) {
    const order = plan.map((_, i) => i)
    if (pass % 2 === 1) order.reverse()
    for (const i of order) {
      const point = await opts.measure(plan[i]!, opts.durations)
      passes[i]!.push(point)
      progress.done++
      opts.log(
        `[${progress.done}] ${describeSetting(point)}: ${formatHz(point.throughput)}/s p50 ${point.p50Ms.toFixed(1)} ms p99 ${point.p99Ms.toFixed(1)} ms conflicts ${(point.conflictRate * 100).toFixed(2)} % failed ${point.failed} rss ${point.rssMb.toFixed(0)} MiB`,
      )
    }
  }
  return passes.map(combinePasses)
}

/** Runs the whole sweep: threads at every level, then tasksPerThread and maxConcurrent at the knees. */
export async function runSweep(opts: SweepOptions): Promise<SweepResults> {
  const startedAt = new Date().toISOString()
  const cores = availableParallelism()
  const levels = opts.levels ?? SWEEP_LEVELS
  const level = levels.at(-1)!
  const progress = { done: 0 }
  const threadPoints = await runSeries(planThreadSeries(cores, levels), opts, progress)
  const threads = findKnee(threadPoints.filter((p) => p.isolation === level))?.threads ?? cores
  const tptPoints = await runSeries(planTasksPerThreadSeries(threads, opts.quick, level), opts, progress)
  const tasksPerThread = findKnee(tptPoints)?.tasksPerThread ?? DEFAULT_TASKS_PER_THREAD
  const mcPoints = await runSeries(
    planMaxConcurrentSeries(threads, tasksPerThread, opts.quick, level),
    opts,
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

/**
 * Which settings the concurrency-limit sweep measures, in three series, one knob at a time:
 *
 * 1. `threads` from 1 to 2 × cores, at each isolation level (both scopes at that level), with 4 tasks
 *    per thread and `maxConcurrent` = threads × tasksPerThread;
 * 2. `tasksPerThread` at the knee of the `synchronized` thread series;
 * 3. `maxConcurrent` at that thread count and the knee of the `tasksPerThread` series.
 *
 * The load generator keeps {@link offeredLoad} executions in flight: twice what the pool runs at once
 * (or `maxConcurrent`, if larger), so the pool never idles for want of work and a small queue forms.
 */

import type { IsolationLevel } from '../config/index.js'
import type { SweepDimension, SweepSetting } from './analysis.js'

/** The isolation levels of the thread series, in chart order. */
export const SWEEP_LEVELS: readonly IsolationLevel[] = ['isolated', 'shared', 'synchronized']

/** The level the tasksPerThread and maxConcurrent series run at (the ticket workload's own). */
export const SERIES_LEVEL: IsolationLevel = 'synchronized'

/** Tasks per thread in the thread series. */
export const DEFAULT_TASKS_PER_THREAD = 4

/** A setting and the series it belongs to. */
export interface PlannedPoint extends SweepSetting {
  series: SweepDimension
}

/** How long each point runs. */
export interface PointDurations {
  warmupMs: number
  durationMs: number
}

/** Per-point warm-up and window: `quick` keeps the whole sweep near 3 minutes on 2 cores. */
export function pointDurations(quick: boolean): PointDurations {
  return quick ? { warmupMs: 300, durationMs: 1200 } : { warmupMs: 1000, durationMs: 5000 }
}

/** Executions the load generator keeps in flight for a setting. */
export function offeredLoad(s: SweepSetting): number {
  return Math.max(2 * s.threads * s.tasksPerThread, s.maxConcurrent)
}

/** Series 1: threads 1 … 2 × cores at every isolation level of `levels`. */
export function planThreadSeries(
  cores: number,
  levels: readonly IsolationLevel[] = SWEEP_LEVELS,
): PlannedPoint[] {
  const out: PlannedPoint[] = []
  // Levels alternate within each thread count, so a drift in machine load hits the three alike.
  for (let threads = 1; threads <= 2 * cores; threads++) {
    for (const isolation of levels) {
      const tasksPerThread = DEFAULT_TASKS_PER_THREAD
      out.push({
        series: 'threads',
        threads,
        tasksPerThread,
        maxConcurrent: threads * tasksPerThread,
        isolation,
      })
    }
  }
  return out
}

/** Series 2: tasksPerThread 1, 2, 4, 8 (and 16 without `quick`) at `threads`. */
export function planTasksPerThreadSeries(
  threads: number,
  quick: boolean,
  level: IsolationLevel = SERIES_LEVEL,
): PlannedPoint[] {
  const values = quick ? [1, 2, 4, 8] : [1, 2, 4, 8, 16]
  return values.map((tasksPerThread) => ({
    series: 'tasksPerThread',
    threads,
    tasksPerThread,
    maxConcurrent: threads * tasksPerThread,
    isolation: level,
  }))
}

/** Series 3: maxConcurrent from 1 up to 4 × threads × tasksPerThread in powers of two. */
export function planMaxConcurrentSeries(
  threads: number,
  tasksPerThread: number,
  quick: boolean,
  level: IsolationLevel = SERIES_LEVEL,
): PlannedPoint[] {
  const top = 4 * threads * tasksPerThread
  const values: number[] = []
  for (let m = 1; m <= top; m *= quick ? 4 : 2) values.push(m)
  if (values.at(-1) !== top) values.push(top)
  return values.map((maxConcurrent) => ({
    series: 'maxConcurrent',
    threads,
    tasksPerThread,
    maxConcurrent,
    isolation: level,
  }))
}

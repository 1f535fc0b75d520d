/**
 * The data model of the concurrency-limit sweep and the two answers it gives: the knee (the smallest
 * setting within 5 % of the best throughput) and the best setting that keeps p99 latency under a budget.
 * Pure functions over measured points, so they are tested on given data.
 */

import type { IsolationLevel } from '../config/index.js'
import { formatHz, type MachineInfo } from './machine.js'
import { median } from './stats.js'

/** The knobs one sweep point sets. */
export interface SweepSetting {
  /** `pool.threads`. */
  threads: number
  /** `pool.tasksPerThread`. */
  tasksPerThread: number
  /** The entry point's `maxConcurrent`. */
  maxConcurrent: number
  /** Isolation of both the stream and the global scope. */
  isolation: IsolationLevel
}

/** Which knob a point's series varies. */
export type SweepDimension = 'threads' | 'tasksPerThread' | 'maxConcurrent'

/** One measured setting. */
export interface SweepPoint extends SweepSetting {
  /** The series this point belongs to. */
  series: SweepDimension
  /** Executions kept in flight by the load generator. */
  offered: number
  /** Completed executions per second. */
  throughput: number
  /** End-to-end latency (trigger to result), in milliseconds. */
  p50Ms: number
  p99Ms: number
  completed: number
  failed: number
  /** State conflicts per completed execution. */
  conflictRate: number
  /** Process memory after the point (all threads share the process), in MiB. */
  rssMb: number
  heapUsedMb: number
}

/** A named setting and why it was chosen. */
export interface SweepPick {
  label: string
  point: SweepPoint
}

/** The file `bench/results/sweep.json`. */
export interface SweepResults {
  machine: MachineInfo
  quick: boolean
  startedAt: string
  budgetMs: number
  points: SweepPoint[]
  /** Knee of each series: per isolation level for threads, one each for tasksPerThread and maxConcurrent. */
  knees: SweepPick[]
  /** The highest-throughput point whose p99 is within the budget, if any. */
  withinBudget: SweepPick | undefined
}

/** Within this fraction of the best throughput a setting counts as "as good". */
export const KNEE_TOLERANCE = 0.05

/** Orders settings from cheapest to dearest: fewer threads, then fewer tasks per thread, then lower maxConcurrent. */
export function compareSettings(a: SweepSetting, b: SweepSetting): number {
  return a.threads - b.threads || a.tasksPerThread - b.tasksPerThread || a.maxConcurrent - b.maxConcurrent
}

/** The smallest setting whose throughput is within {@link KNEE_TOLERANCE} of the best; `undefined` if none ran. */
export function findKnee(points: readonly SweepPoint[]): SweepPoint | undefined {
  const usable = points.filter((p) => Number.isFinite(p.throughput) && p.throughput > 0)
  if (usable.length === 0) return undefined
  const best = Math.max(...usable.map((p) => p.throughput))
  return [...usable].sort(compareSettings).find((p) => p.throughput >= best * (1 - KNEE_TOLERANCE))
}

/**
 * The highest-throughput point with p99 at or under `budgetMs` and no failed executions; among equal
 * throughputs the smaller setting. `undefined` if no point fits.
 */
export function pickWithinBudget(points: readonly SweepPoint[], budgetMs: number): SweepPoint | undefined {
  return points
    .filter((p) => p.p99Ms <= budgetMs && p.failed === 0 && p.throughput > 0)
    .sort((a, b) => b.throughput - a.throughput || compareSettings(a, b))[0]
}

/**
 * One point from several passes over the same setting: the median of throughput, p50, p99, conflict rate
 * and memory; completed and failed executions summed.
 */
export function combinePasses(passes: readonly SweepPoint[]): SweepPoint {
  const of = (f: (p: SweepPoint) => number) => median(passes.map(f))
  return {
    ...passes[0]!,
    throughput: of((p) => p.throughput),
    p50Ms: of((p) => p.p50Ms),
    p99Ms: of((p) => p.p99Ms),
    conflictRate: of((p) => p.conflictRate),
    rssMb: of((p) => p.rssMb),
    heapUsedMb: of((p) => p.heapUsedMb),
    completed: passes.reduce((sum, p) => sum + p.completed, 0),
    failed: passes.reduce((sum, p) => sum + p.failed, 0),
  }
}

/** `threads=2 tasksPerThread=4 maxConcurrent=8 isolation=shared`. */
export function describeSetting(s: SweepSetting): string {
  return `threads=${s.threads} tasksPerThread=${s.tasksPerThread} maxConcurrent=${s.maxConcurrent} isolation=${s.isolation}`
}

/** The knees of every series in `points`. */
export function findKnees(points: readonly SweepPoint[]): SweepPick[] {
  const picks: SweepPick[] = []
  const groups = new Map<string, SweepPoint[]>()
  for (const p of points) {
    const key = p.series === 'threads' ? `threads (${p.isolation})` : p.series
    groups.set(key, [...(groups.get(key) ?? []), p])
  }
  for (const [label, group] of groups) {
    const knee = findKnee(group)
    if (knee) picks.push({ label: `knee of ${label}`, point: knee })
  }
  return picks
}

/** Everything the sweep concludes from its points. */
export function analyzeSweep(
  points: readonly SweepPoint[],
  budgetMs: number,
): Pick<SweepResults, 'knees' | 'withinBudget'> {
  const best = pickWithinBudget(points, budgetMs)
  return {
    knees: findKnees(points),
    withinBudget: best ? { label: `best throughput with p99 ≤ ${budgetMs} ms`, point: best } : undefined,
  }
}

/** The knee and budget lines printed under the terminal chart. */
export function sweepSummary(results: SweepResults): string[] {
  const lines = results.knees.map(
    (k) => `${k.label}: ${describeSetting(k.point)} (${formatHz(k.point.throughput)}/s)`,
  )
  const b = results.withinBudget
  lines.push(
    b
      ? `${b.label}: ${describeSetting(b.point)} (${formatHz(b.point.throughput)}/s, p99 ${b.point.p99Ms.toFixed(1)} ms)`
      : `no setting kept p99 ≤ ${results.budgetMs} ms; raise --budget-ms or lower the load`,
  )
  return lines
}

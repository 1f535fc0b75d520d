/**
 * A user's own workload for the sweep: their config, one entry point, and inputs from a JSON Lines file.
 * Each point starts a runtime from the config with the point's pool size, `tasksPerThread`,
 * `maxConcurrent` and isolation on that entry point, every trigger turned off (no ports, no timers), and
 * drives the entry point with the inputs in a closed loop. Main thread only.
 *
 * @module
 */
import { readFile } from 'node:fs/promises'
import { resolve } from 'node:path'
import type { ResolvedRuntimeConfig } from '../config/index.js'
import { InvalidArgumentError } from '../errors.js'
import { type AgentRuntime, runtimeOf } from '../runtime/index.js'
import type { SweepPoint } from './analysis.js'
import { cycle, driveClosedLoop } from './load.js'
import { offeredLoad, type PlannedPoint, type PointDurations } from './plan.js'
import { percentile } from './stats.js'

const MiB = 1024 * 1024

/** What the sweep runs: the entry point `entry` of `config`, fed `inputs` in turn. */
export interface Workload {
  config: ResolvedRuntimeConfig
  entry: string
  inputs: readonly unknown[]
}

/**
 * Reads a JSON Lines file: one execution input per non-empty line.
 * @throws {InvalidArgumentError} naming the file and the first line that is not JSON, or an empty file.
 */
export async function readInputs(path: string): Promise<unknown[]> {
  const file = resolve(path)
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? String(err)
    throw new InvalidArgumentError(`cannot read the inputs file ${file} (${code})`)
  }
  const inputs: unknown[] = []
  const lines = text.split('\n')
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim()
    if (line === '') continue
    try {
      inputs.push(JSON.parse(line))
    } catch (err) {
      throw new InvalidArgumentError(
        `inputs file ${file}, line ${i + 1}: not JSON: ${(err as Error).message}`,
      )
    }
  }
  if (inputs.length === 0) {
    throw new InvalidArgumentError(`inputs file ${file} has no inputs: write one JSON value per line`)
  }
  return inputs
}

/** The config of one point: the point's knobs on the swept entry point, every trigger manual. */
export function pointConfig(w: Workload, p: PlannedPoint): ResolvedRuntimeConfig {
  return {
    ...w.config,
    pool: { ...w.config.pool, threads: p.threads, tasksPerThread: p.tasksPerThread },
    metrics: undefined,
    entryPoints: w.config.entryPoints.map((ep) => ({
      ...ep,
      trigger: { type: 'manual' as const },
      ...(ep.id === w.entry
        ? {
            maxConcurrent: p.maxConcurrent,
            maxQueue: Math.max(ep.maxQueue, offeredLoad(p)),
            isolation: { stream: p.isolation, global: p.isolation },
          }
        : {}),
    })),
  }
}

/** Measures one point of `w`. A point where no execution completes fails the sweep, saying why. */
export async function measureWorkloadPoint(
  w: Workload,
  p: PlannedPoint,
  durations: PointDurations,
): Promise<SweepPoint> {
  const runtime = runtimeOf(pointConfig(w, p))
  await runtime.start()
  return measureRuntimePoint(runtime, w.entry, cycle(w.inputs), p, durations)
}

/**
 * Drives `entry` of the started `runtime` in a closed loop at the point's offered load, with `next`
 * giving each input, and measures throughput, latency, conflict rate and memory. Stops the runtime
 * (draining) whatever happens. A point where no execution completes fails, saying why.
 */
export async function measureRuntimePoint(
  runtime: AgentRuntime,
  entry: string,
  next: () => unknown,
  p: PlannedPoint,
  durations: PointDurations,
): Promise<SweepPoint> {
  try {
    const conflictsBefore = runtime.state.stats().conflicts
    const offered = offeredLoad(p)
    const load = await driveClosedLoop(runtime, { entry, inflight: offered, ...durations, next })
    if (load.totalCompleted === 0) {
      const why = load.firstError ? `${load.firstError.code}: ${load.firstError.message}` : 'none ended'
      throw new Error(`no execution of ${entry} completed (${why})`)
    }
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
      conflictRate: conflicts / load.totalCompleted,
      rssMb: memory.rss / MiB,
      heapUsedMb: memory.heapUsed / MiB,
    }
  } finally {
    await runtime.stop({ drain: true })
  }
}

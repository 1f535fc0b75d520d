/**
 * The sweep's closed-loop load generator: keeps a fixed number of executions in flight on one entry
 * point and measures the ones that complete inside a window after a warm-up. Main thread only.
 *
 * @module
 */
import type { AgentRuntime } from '../runtime/index.js'

/** What a closed-loop run measured in its window. */
export interface LoadResult {
  /** Executions completed in the window. */
  completed: number
  /** Executions completed over the whole run, warm-up included. */
  totalCompleted: number
  /** Executions that ended in the window without completing. */
  failed: number
  /** The first failure seen, to say why a point failed. */
  firstError: { code: string; message: string } | undefined
  /** Length of the measured window, in milliseconds. */
  windowMs: number
  /** End-to-end latency of each execution completed in the window, in milliseconds. */
  latenciesMs: number[]
}

/** How {@link driveClosedLoop} loads the runtime. */
export interface LoadOptions {
  /** The entry point the executions are triggered on. */
  entry: string
  /** Executions kept in flight: each completion starts the next. */
  inflight: number
  /** Executions before the window are not counted. */
  warmupMs: number
  /** The measured window. */
  durationMs: number
  /** The next execution's input. */
  next: () => unknown
}

/**
 * Keeps `inflight` executions running for `warmupMs + durationMs` and measures the executions that
 * complete inside the window after the warm-up. Waits for the last executions before returning.
 */
export async function driveClosedLoop(runtime: AgentRuntime, opts: LoadOptions): Promise<LoadResult> {
  const start = performance.now()
  const windowStart = start + opts.warmupMs
  const end = windowStart + opts.durationMs
  const out: LoadResult = {
    completed: 0,
    totalCompleted: 0,
    failed: 0,
    firstError: undefined,
    windowMs: opts.durationMs,
    latenciesMs: [],
  }
  const lane = async () => {
    while (performance.now() < end) {
      const t0 = performance.now()
      const r = await runtime.triggerAndWait(opts.entry, opts.next())
      const t1 = performance.now()
      if (r.status === 'completed') out.totalCompleted++
      else out.firstError ??= r.error ?? { code: r.status, message: r.status }
      if (t1 < windowStart || t1 > end) continue
      if (r.status === 'completed') {
        out.completed++
        out.latenciesMs.push(t1 - t0)
      } else out.failed++
    }
  }
  await Promise.all(Array.from({ length: opts.inflight }, lane))
  return out
}

/** Cycles through `items` for ever, in order. */
export function cycle<T>(items: readonly T[]): () => T {
  let i = 0
  return () => {
    const item = items[i % items.length] as T
    i++
    return item
  }
}

/**
 * Types shared by every benchmark suite, the runner (`bench/run.ts`) and the sweep (`bench/sweep.ts`).
 *
 * A suite is a `bench/<comparison>.bench.ts` module whose default export is a {@link BenchSuite}. Each
 * {@link BenchEntry} it returns compares one baseline with one contender measured in the same run.
 */

import type { MachineInfo } from '../../src/sweep/index.js'

export type { MachineInfo }

/** One side of a comparison: what was measured, its throughput and its tail latency. */
export interface BenchSide {
  /** What this side runs, e.g. `'raw piscina run()'`. */
  name: string
  /** Operations per second (an iteration that completes N operations counts N). */
  hz: number
  /** 99th percentile latency of one iteration, in milliseconds. */
  p99Ms: number
  /** Where this side's CPU time went (medians over the rounds); absent in results written before it. */
  cpu?: CpuAccount
}

/** CPU time per operation, split by thread; from `bench/harness/cpu.ts`. */
export interface CpuAccount {
  /** Main-thread CPU microseconds per operation. */
  mainUsPerOp: number
  /** CPU microseconds per operation on every other thread of the process (pool threads, V8 helpers). */
  otherUsPerOp: number
  /** Main-thread CPU microseconds per record consumed, when the side counts its records. */
  mainUsPerRecord?: number
}

/** One named ratio, exactly as it appears in `bench/results/latest.json` (docs/architecture.md, "Benchmark results file"). */
export interface BenchEntry {
  /** The ratio's name as the issues spell it, e.g. `'dispatch_vs_piscina'`. */
  name: string
  /** Unit of `hz`, e.g. `'executions/s'`. */
  unit: string
  baseline: BenchSide
  contender: BenchSide
  /** `contender.hz / baseline.hz`. */
  ratio: number
  /** The ratio the entry must reach to pass. */
  target: number
}

/** Options the runner passes to every suite. */
export interface BenchRunOptions {
  /** Short budgets: every suite together finishes in under 4 minutes on 2 cores. */
  quick: boolean
  /** Prints one progress line; suites call it while they run. */
  log: (msg: string) => void
}

/** The default export of a `bench/*.bench.ts` module. */
export interface BenchSuite {
  /** Suite name, matched by `npm run bench -- --filter <name>`. */
  name: string
  run(opts: BenchRunOptions): Promise<BenchEntry[]>
}

/** The machine a result was measured on; results are only comparable on the same machine. */

/** A suite that threw: reported as failed, the other suites still run. */
export interface SuiteFailure {
  suite: string
  error: { code?: string; message: string }
}

/** The file `bench/results/latest.json` (docs/architecture.md, "Benchmark results file"). */
export interface BenchResults {
  machine: MachineInfo
  quick: boolean
  startedAt: string
  results: BenchEntry[]
  /** Present only when at least one suite threw. */
  failures?: SuiteFailure[]
}

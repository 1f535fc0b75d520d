/**
 * Measures a baseline and a contender side by side with tinybench and turns the result into a
 * {@link BenchEntry}.
 *
 * Machine noise (other processes, thermal changes, GC of earlier suites) drifts over seconds, so the two
 * sides are not measured one after the other in one long block: the measurement is split into rounds, each
 * round runs both sides for the same time budget, and the order alternates from round to round. The
 * reported throughput of each side is the median of its per-round throughputs; its p99 is taken over the
 * latency samples of all rounds.
 *
 * Each progress line also says how many cores the process actually used while each side ran (CPU time
 * over wall time): on a machine shared with other work, a multi-threaded contender that got only one core
 * cannot show its speed-up, and the line makes that visible.
 */

import { Bench } from 'tinybench'
import { median, percentile } from './stats.js'
import type { BenchEntry, BenchSide } from './types.js'

/** One side of a comparison. */
export interface SideSpec {
  /** What this side runs, e.g. `'plain loop, one thread'`. */
  name: string
  /** One iteration. May be async; each call is awaited before the next starts. */
  fn: () => unknown
  /**
   * Whether `fn` returns a promise. Left out, tinybench decides: an `async` function is async, but a plain
   * function is called once, unawaited, to see whether it returns a promise, and that stray call overlaps
   * the measured iterations. So write a side that returns a promise as an `async` function, or say so here.
   * @default an `async` function is async; a plain one is probed
   */
  async?: boolean
  /**
   * Operations one iteration completes (an iteration that completes N concurrent executions counts N).
   * `hz` is iterations per second times this.
   * @default 1
   */
  opsPerIteration?: number
}

/** What to compare and for how long. */
export interface CompareSpec {
  /** The entry name as the issues spell it. */
  name: string
  /** Unit of `hz`, e.g. `'tickets/s'`. */
  unit: string
  /** The ratio (contender over baseline) the entry must reach. */
  target: number
  baseline: SideSpec
  contender: SideSpec
  /** Short budgets (see {@link budgetFor}). */
  quick: boolean
  /** Progress output, one line per round. */
  log?: (msg: string) => void
  /** Overrides the rounds and time budget {@link budgetFor} picks. */
  budget?: Partial<RoundBudget>
}

/** How long one comparison measures. */
export interface RoundBudget {
  /** Rounds; each runs both sides, the order alternating. */
  rounds: number
  /** Measuring time per side per round, in milliseconds. */
  timeMs: number
  /** Warm-up time per side per round, in milliseconds. */
  warmupMs: number
}

/** The default budget: `quick` keeps every suite together under 4 minutes on 2 cores. */
export function budgetFor(quick: boolean): RoundBudget {
  return quick ? { rounds: 3, timeMs: 400, warmupMs: 100 } : { rounds: 7, timeMs: 1500, warmupMs: 300 }
}

/** Builds an entry from two measured sides; `ratio` is contender over baseline (0 if the baseline is 0). */
export function makeEntry(
  spec: { name: string; unit: string; target: number },
  baseline: BenchSide,
  contender: BenchSide,
): BenchEntry {
  const ratio = baseline.hz > 0 ? contender.hz / baseline.hz : 0
  return { name: spec.name, unit: spec.unit, baseline, contender, ratio, target: spec.target }
}

/** Whether an entry reached its target. */
export function passes(entry: BenchEntry): boolean {
  return Number.isFinite(entry.ratio) && entry.ratio >= entry.target
}

interface RoundSample {
  hz: number
  latencies: readonly number[]
  /** CPU time of the whole process over wall time while this side ran: the cores it actually got. */
  cores: number
}

/** Runs both sides in alternating rounds and returns the entry. A side that throws fails the comparison. */
export async function compareSideBySide(spec: CompareSpec): Promise<BenchEntry> {
  const budget = { ...budgetFor(spec.quick), ...spec.budget }
  const sides = { baseline: spec.baseline, contender: spec.contender }
  const samples: Record<keyof typeof sides, RoundSample[]> = { baseline: [], contender: [] }
  for (let round = 0; round < budget.rounds; round++) {
    const order: (keyof typeof sides)[] =
      round % 2 === 0 ? ['baseline', 'contender'] : ['contender', 'baseline']
    for (const key of order) samples[key].push(await measureOnce(sides[key], budget))
    const b = samples.baseline.at(-1)!
    const c = samples.contender.at(-1)!
    spec.log?.(
      `${spec.name}: round ${round + 1}/${budget.rounds} baseline ${formatHz(b.hz)} contender ${formatHz(c.hz)} ${spec.unit} ` +
        `(×${(c.hz / b.hz).toFixed(2)}; cores used ${b.cores.toFixed(2)} / ${c.cores.toFixed(2)})`,
    )
  }
  return makeEntry(
    spec,
    summarize(spec.baseline, samples.baseline),
    summarize(spec.contender, samples.contender),
  )
}

async function measureOnce(side: SideSpec, budget: RoundBudget): Promise<RoundSample> {
  const bench = new Bench({
    time: budget.timeMs,
    warmupTime: budget.warmupMs,
    warmupIterations: 1,
    iterations: 1,
    retainSamples: true,
    throws: true,
  })
  bench.add(side.name, side.fn, side.async === undefined ? {} : { async: side.async })
  const cpuBefore = process.cpuUsage()
  const wallBefore = performance.now()
  const [task] = await bench.run()
  const cpu = process.cpuUsage(cpuBefore)
  const wallMs = performance.now() - wallBefore
  const result = task!.result
  if (result.state !== 'completed') {
    throw new Error(`${side.name}: tinybench ended in state ${result.state}`)
  }
  return {
    hz: result.period > 0 ? ((side.opsPerIteration ?? 1) * 1000) / result.period : 0,
    latencies: result.latency.samples ?? [],
    cores: wallMs > 0 ? (cpu.user + cpu.system) / 1000 / wallMs : 0,
  }
}

function summarize(side: SideSpec, rounds: readonly RoundSample[]): BenchSide {
  return {
    name: side.name,
    hz: median(rounds.map((r) => r.hz)),
    p99Ms: percentile(
      rounds.flatMap((r) => r.latencies),
      99,
    ),
  }
}

/** `12345.6` → `'12.3k'`; for progress lines and tables. */
export function formatHz(hz: number): string {
  if (!Number.isFinite(hz)) return String(hz)
  if (hz >= 1e6) return `${(hz / 1e6).toFixed(2)}M`
  if (hz >= 1e3) return `${(hz / 1e3).toFixed(1)}k`
  return hz.toFixed(1)
}

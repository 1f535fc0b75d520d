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
import { formatHz, median, percentile } from '../../src/sweep/index.js'
import { cpuMark, cpuSince } from './cpu.js'
import type { BenchEntry, BenchSide, CpuAccount } from './types.js'

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
  /**
   * Records the main thread has consumed for this side so far (a running total), for the CPU accounting's
   * cost per record. Left out, no per-record cost is reported.
   */
  records?: () => number
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

/**
 * The quick budget of a comparison whose iteration is a whole batch (a tenth of a second or more): the
 * default quick round holds only a handful of iterations, and three of them swing the median too far.
 */
export const BATCH_QUICK_BUDGET: RoundBudget = { rounds: 5, timeMs: 800, warmupMs: 200 }

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
  cpu: CpuAccount
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
  const entry = makeEntry(
    spec,
    summarize(spec.baseline, samples.baseline),
    summarize(spec.contender, samples.contender),
  )
  spec.log?.(`${spec.name}: ${describeCpu(entry)}`)
  return entry
}

/** The CPU accounting of both sides of an entry, as one progress line. */
export function describeCpu(entry: BenchEntry): string {
  const side = (label: string, s: BenchSide): string => {
    const c = s.cpu
    if (c === undefined) return `${label} —`
    const perRecord =
      c.mainUsPerRecord === undefined ? '' : `, ${c.mainUsPerRecord.toFixed(2)} main per record`
    return `${label} ${c.mainUsPerOp.toFixed(2)} main + ${c.otherUsPerOp.toFixed(2)} other threads${perRecord}`
  }
  const c = entry.contender.cpu
  const full =
    c !== undefined && c.mainUsPerOp > 0
      ? `; the contender's main thread is saturated at ≈${(c.otherUsPerOp / c.mainUsPerOp).toFixed(1)} busy threads`
      : ''
  return `CPU µs per ${singular(entry.unit)}: ${side('baseline', entry.baseline)}; ${side('contender', entry.contender)}${full}`
}

/** `'executions/s'` → `'execution'`. */
function singular(unit: string): string {
  return unit.replace(/\/s$/, '').replace(/s$/, '')
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
  // Counts calls, warm-up included, since the CPU clocks run over the warm-up too.
  let calls = 0
  const fn = side.fn
  const counted = isAsyncFunction(fn)
    ? async () => {
        calls++
        return fn()
      }
    : () => {
        calls++
        return fn()
      }
  bench.add(side.name, counted, side.async === undefined ? {} : { async: side.async })
  const recordsBefore = side.records?.() ?? 0
  const mark = cpuMark()
  const [task] = await bench.run()
  const used = cpuSince(mark)
  const records = (side.records?.() ?? 0) - recordsBefore
  const result = task!.result
  if (result.state !== 'completed') {
    throw new Error(`${side.name}: tinybench ended in state ${result.state}`)
  }
  return {
    hz: result.period > 0 ? ((side.opsPerIteration ?? 1) * 1000) / result.period : 0,
    latencies: result.latency.samples ?? [],
    cores: used.wallMs > 0 ? (used.mainUs + used.otherUs) / 1000 / used.wallMs : 0,
    cpu: accountCpu(
      used,
      calls * (side.opsPerIteration ?? 1),
      side.records === undefined ? undefined : records,
    ),
  }
}

function accountCpu(
  used: { mainUs: number; otherUs: number },
  ops: number,
  records: number | undefined,
): CpuAccount {
  const account: CpuAccount = { mainUsPerOp: used.mainUs / ops, otherUsPerOp: used.otherUs / ops }
  if (records !== undefined && records > 0) account.mainUsPerRecord = used.mainUs / records
  return account
}

function isAsyncFunction(fn: () => unknown): boolean {
  return fn.constructor.name === 'AsyncFunction'
}

function summarize(side: SideSpec, rounds: readonly RoundSample[]): BenchSide {
  const cpu: CpuAccount = {
    mainUsPerOp: median(rounds.map((r) => r.cpu.mainUsPerOp)),
    otherUsPerOp: median(rounds.map((r) => r.cpu.otherUsPerOp)),
  }
  const perRecord = rounds.flatMap((r) =>
    r.cpu.mainUsPerRecord === undefined ? [] : [r.cpu.mainUsPerRecord],
  )
  if (perRecord.length > 0) cpu.mainUsPerRecord = median(perRecord)
  return {
    name: side.name,
    hz: median(rounds.map((r) => r.hz)),
    p99Ms: percentile(
      rounds.flatMap((r) => r.latencies),
      99,
    ),
    cpu,
  }
}

/**
 * Command-line parsing for `npm run bench` (`bench/run.ts`) and `npm run bench:sweep` (`bench/sweep.ts`).
 * A bad flag or value is an {@link InvalidArgumentError} (`AGENTPOOL_INVALID_ARGUMENT`) naming the flag
 * and the value it got.
 */

import { parseArgs } from 'node:util'
import { InvalidArgumentError } from '../../src/errors.js'

/** Exit code of a bench command given bad arguments. */
export const USAGE_EXIT_CODE = 64

/** Options of `npm run bench`. */
export interface RunArgs {
  /** Short budgets: all suites in under 4 minutes on 2 cores. @default false */
  quick: boolean
  /** Run only the suite with this name (or file stem, `tickets` for `tickets.bench.ts`). @default undefined (all) */
  filter: string | undefined
  /** Where the results go. @default 'bench/results/latest.json' */
  out: string
  /** Print usage and exit. @default false */
  help: boolean
}

/** Options of `npm run bench:sweep`. */
export interface SweepArgs {
  /** Fewer points and shorter measurements (under ~3 minutes on 2 cores). @default false */
  quick: boolean
  /** The p99 latency budget in milliseconds the recommended setting must stay under. @default 100 */
  budgetMs: number
  /** Folder for `sweep.json` and `sweep.svg`. @default 'bench/results' */
  outDir: string
  /** Passes over each series; each point reports the median of its passes. @default 1 */
  repeat: number
  /** Print usage and exit. @default false */
  help: boolean
}

/** Usage text of `npm run bench`. */
export const RUN_USAGE = `usage: npm run bench -- [--quick] [--filter <suite>] [--out <file>]

  --quick            short budgets (all suites in under 4 minutes on 2 cores)
  --filter <suite>   run one suite, by name or file stem (e.g. tickets)
  --out <file>       results file (default bench/results/latest.json)

exit code: 0 every entry met its target, 1 an entry missed its target,
           2 a suite failed (threw, or no suite matched --filter), 64 bad arguments`

/** Usage text of `npm run bench:sweep`. */
export const SWEEP_USAGE = `usage: npm run bench:sweep -- [--quick] [--budget-ms <ms>] [--repeat <n>] [--out-dir <dir>]

  --quick            fewer points, shorter measurements (under ~3 minutes on 2 cores)
  --budget-ms <ms>   p99 latency budget for the recommended setting (default 100)
  --repeat <n>       passes over each series, every other one in reverse order;
                     each point reports the median of its passes (default 1)
  --out-dir <dir>    where sweep.json and sweep.svg go (default bench/results)

exit code: 0 done, 2 the sweep failed, 64 bad arguments`

function parse(argv: readonly string[], options: Record<string, { type: 'string' | 'boolean' }>) {
  try {
    return parseArgs({ args: [...argv], options, strict: true, allowPositionals: false }).values
  } catch (err) {
    throw new InvalidArgumentError(
      `bad command line ${JSON.stringify(argv.join(' '))}: ${(err as Error).message}`,
      {
        argv: [...argv],
      },
    )
  }
}

/** Parses `npm run bench` arguments (everything after `--`). */
export function parseRunArgs(argv: readonly string[]): RunArgs {
  const v = parse(argv, {
    quick: { type: 'boolean' },
    filter: { type: 'string' },
    out: { type: 'string' },
    help: { type: 'boolean' },
  })
  const filter = v.filter as string | undefined
  if (filter !== undefined && filter.trim() === '') {
    throw new InvalidArgumentError('--filter needs a suite name, got an empty string', { flag: '--filter' })
  }
  return {
    quick: v.quick === true,
    filter,
    out: (v.out as string | undefined) ?? 'bench/results/latest.json',
    help: v.help === true,
  }
}

/** Parses `npm run bench:sweep` arguments (everything after `--`). */
export function parseSweepArgs(argv: readonly string[]): SweepArgs {
  const v = parse(argv, {
    quick: { type: 'boolean' },
    'budget-ms': { type: 'string' },
    repeat: { type: 'string' },
    'out-dir': { type: 'string' },
    help: { type: 'boolean' },
  })
  const budgetText = v['budget-ms'] as string | undefined
  const budgetMs = budgetText === undefined ? 100 : Number(budgetText)
  if (!Number.isFinite(budgetMs) || budgetMs <= 0 || budgetText?.trim() === '') {
    throw badValue('--budget-ms', 'a positive number of milliseconds', budgetText)
  }
  const repeatText = v.repeat as string | undefined
  const repeat = repeatText === undefined ? 1 : Number(repeatText)
  if (!Number.isInteger(repeat) || repeat < 1 || repeatText?.trim() === '') {
    throw badValue('--repeat', 'a whole number of passes, 1 or more', repeatText)
  }
  return {
    quick: v.quick === true,
    budgetMs,
    outDir: (v['out-dir'] as string | undefined) ?? 'bench/results',
    repeat,
    help: v.help === true,
  }
}

function badValue(flag: string, expected: string, got: string | undefined): InvalidArgumentError {
  return new InvalidArgumentError(`${flag} must be ${expected}, got ${JSON.stringify(got)}`, {
    flag,
    value: got,
  })
}

/**
 * Runs a bench command: parses `argv`, prints the usage for `--help` (exit 0) or for bad arguments
 * (exit 64, the message on stderr), otherwise returns what `body` returns.
 */
export async function runCommand<A extends { help: boolean }>(
  argv: readonly string[],
  parse: (argv: readonly string[]) => A,
  usage: string,
  body: (args: A) => Promise<number>,
): Promise<number> {
  let args: A
  try {
    args = parse(argv)
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n${usage}\n`)
    return USAGE_EXIT_CODE
  }
  if (args.help) {
    process.stdout.write(`${usage}\n`)
    return 0
  }
  return body(args)
}

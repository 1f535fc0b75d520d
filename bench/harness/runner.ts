/**
 * The engine behind `npm run bench`: finds the `bench/*.bench.ts` suites, runs them one after another
 * (a suite that throws is recorded as failed and the others still run), prints progress and a final
 * table, and writes `bench/results/latest.json` in the shape of docs/architecture.md, "Benchmark results file".
 */

import { mkdir, readdir, writeFile } from 'node:fs/promises'
import { basename, dirname, join, resolve } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { AgentPoolError, InvalidArgumentError } from '../../src/errors.js'
import { formatHz, machineInfo } from '../../src/sweep/index.js'
import { parseRunArgs, RUN_USAGE, runCommand, USAGE_EXIT_CODE } from './args.js'
import { passes } from './compare.js'
import type { BenchEntry, BenchResults, BenchSuite, SuiteFailure } from './types.js'

/** Exit codes of `npm run bench`. */
export const EXIT = {
  /** Every entry met its target. */
  OK: 0,
  /** At least one entry missed its target. */
  BELOW_TARGET: 1,
  /** A suite threw or failed to load, or no suite matched `--filter`. */
  SUITE_FAILED: 2,
  /** The command line was wrong. */
  USAGE: USAGE_EXIT_CODE,
} as const

/** The folder holding the `*.bench.ts` suites. */
export const BENCH_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '..')

/** Paths of the `*.bench.ts` files in `dir`, sorted by name. */
export async function discoverSuites(dir: string = BENCH_DIR): Promise<string[]> {
  const names = await readdir(dir)
  return names
    .filter((n) => n.endsWith('.bench.ts'))
    .sort()
    .map((n) => join(dir, n))
}

/** The stem a suite file answers to in `--filter`: `tickets` for `tickets.bench.ts`. */
export function suiteStem(file: string): string {
  return basename(file).replace(/\.bench\.ts$/, '')
}

/** Imports a suite file and checks its default export is a {@link BenchSuite}. */
export async function loadSuite(file: string): Promise<BenchSuite> {
  const mod = (await import(pathToFileURL(file).href)) as { default?: unknown }
  const suite = mod.default as Partial<BenchSuite> | undefined
  if (typeof suite?.name !== 'string' || typeof suite.run !== 'function') {
    throw new InvalidArgumentError(
      `${basename(file)} must export default { name: string, run(opts): Promise<BenchEntry[]> }`,
      { file },
    )
  }
  return suite as BenchSuite
}

/** Checks the entries a suite returned have the shape of docs/architecture.md ("Benchmark results file"); names the first bad field. */
export function validateEntries(suite: string, entries: unknown): BenchEntry[] {
  if (!Array.isArray(entries))
    throw new InvalidArgumentError(`suite ${suite} returned ${typeof entries}, not an array of entries`)
  for (const [i, e] of entries.entries()) {
    const bad = entryProblem(e)
    if (bad) throw new InvalidArgumentError(`suite ${suite} entry ${i}: ${bad}`, { suite, index: i })
  }
  return entries as BenchEntry[]
}

function entryProblem(e: any): string | undefined {
  if (typeof e?.name !== 'string' || e.name === '') return 'name must be a non-empty string'
  if (typeof e.unit !== 'string') return 'unit must be a string'
  for (const side of ['baseline', 'contender'] as const) {
    const s = e[side]
    if (typeof s?.name !== 'string') return `${side}.name must be a string`
    if (typeof s.hz !== 'number') return `${side}.hz must be a number`
    if (typeof s.p99Ms !== 'number') return `${side}.p99Ms must be a number`
  }
  if (typeof e.ratio !== 'number') return 'ratio must be a number'
  if (typeof e.target !== 'number') return 'target must be a number'
  return undefined
}

/** How {@link runSuites} runs. */
export interface RunSuitesOptions {
  files: readonly string[]
  quick: boolean
  filter?: string | undefined
  /** One progress line. */
  log: (msg: string) => void
  /** Clock for the elapsed time in progress lines. @default performance.now */
  now?: () => number
}

/** Runs the suites in order; a suite that throws becomes a {@link SuiteFailure}. */
export async function runSuites(opts: RunSuitesOptions): Promise<BenchResults> {
  const now = opts.now ?? (() => performance.now())
  const startedAt = new Date().toISOString()
  const loaded: { file: string; suite?: BenchSuite; error?: unknown }[] = []
  for (const file of opts.files) {
    try {
      loaded.push({ file, suite: await loadSuite(file) })
    } catch (error) {
      loaded.push({ file, error })
    }
  }
  const selected =
    opts.filter === undefined
      ? loaded
      : loaded.filter((l) => l.suite?.name === opts.filter || suiteStem(l.file) === opts.filter)
  const results: BenchEntry[] = []
  const failures: SuiteFailure[] = []
  if (selected.length === 0) {
    const known = loaded.map((l) => l.suite?.name ?? suiteStem(l.file)).join(', ') || '(none)'
    failures.push({
      suite: opts.filter ?? '*',
      error: {
        code: 'AGENTPOOL_INVALID_ARGUMENT',
        message:
          opts.filter === undefined
            ? 'no bench/*.bench.ts suite found'
            : `no suite matches ${JSON.stringify(opts.filter)}; suites: ${known}`,
      },
    })
  }
  const t0 = now()
  for (const [i, item] of selected.entries()) {
    const label = item.suite?.name ?? suiteStem(item.file)
    const prefix = () => `[${i + 1}/${selected.length} ${label} +${((now() - t0) / 1000).toFixed(1)}s]`
    try {
      if (item.error !== undefined) throw item.error
      opts.log(`${prefix()} starting`)
      const entries = validateEntries(
        label,
        await item.suite!.run({ quick: opts.quick, log: (m) => opts.log(`${prefix()} ${m}`) }),
      )
      results.push(...entries)
      opts.log(
        `${prefix()} done: ${entries.map((e) => `${e.name} ×${e.ratio.toFixed(2)}`).join(', ') || 'no entries'}`,
      )
    } catch (err) {
      failures.push({ suite: label, error: describeError(err) })
      opts.log(`${prefix()} FAILED: ${describeError(err).message}`)
    }
  }
  const out: BenchResults = { machine: machineInfo(), quick: opts.quick, startedAt, results }
  if (failures.length > 0) out.failures = failures
  return out
}

function describeError(err: unknown): SuiteFailure['error'] {
  if (err instanceof AgentPoolError) return { code: err.code, message: err.message }
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code
    return typeof code === 'string' ? { code, message: err.message } : { message: err.message }
  }
  return { message: String(err) }
}

/** The exit code for a finished run (see {@link EXIT}). */
export function exitCodeFor(results: BenchResults): number {
  if (results.failures?.length) return EXIT.SUITE_FAILED
  return results.results.every(passes) ? EXIT.OK : EXIT.BELOW_TARGET
}

/** The final table: one row per entry, then one per failed suite. */
export function formatTable(results: BenchResults): string {
  const header = ['entry', 'unit', 'baseline', 'contender', 'ratio', 'target', 'result']
  const rows = results.results.map((e) => [
    e.name,
    e.unit,
    formatHz(e.baseline.hz),
    formatHz(e.contender.hz),
    `×${e.ratio.toFixed(2)}`,
    `≥ ${e.target}`,
    passes(e) ? 'pass' : 'FAIL',
  ])
  for (const f of results.failures ?? [])
    rows.push([f.suite, '', '', '', '', '', `FAILED (suite): ${f.error.message}`])
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => (c === 6 ? 0 : r[c]!.length))))
  const line = (cells: string[]) =>
    cells
      .map((cell, c) => (c === 0 || c === 1 || c === 6 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!)))
      .join('  ')
      .trimEnd()
  const m = results.machine
  return [
    `${m.cpus} cpus, node ${m.node}, ${m.os}${results.quick ? ', quick' : ''} — started ${results.startedAt}`,
    line(header),
    line(widths.map((w) => '-'.repeat(w))),
    ...rows.map(line),
  ].join('\n')
}

/** Writes the results as JSON, creating the folder. */
export async function writeResults(path: string, results: BenchResults): Promise<void> {
  await mkdir(dirname(path), { recursive: true })
  await writeFile(path, `${JSON.stringify(results, null, 2)}\n`)
}

/** `npm run bench`: parses `argv`, runs, prints, writes; returns the exit code. */
export async function main(argv: readonly string[]): Promise<number> {
  return runCommand(argv, parseRunArgs, RUN_USAGE, async (args) => {
    const results = await runSuites({
      files: await discoverSuites(),
      quick: args.quick,
      filter: args.filter,
      log: (msg) => process.stderr.write(`${msg}\n`),
    })
    process.stdout.write(`\n${formatTable(results)}\n`)
    await writeResults(args.out, results)
    process.stdout.write(`results written to ${args.out}\n`)
    return exitCodeFor(results)
  })
}

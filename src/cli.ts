/**
 * The `agentpool` command (commander): `run`, `validate`, `trigger`, `runs` and `bench`. `bin/agentpool.js`
 * calls {@link main}: from `dist/` in an installed package, from the sources through tsx in a clone.
 *
 * Exit codes: 0 success; 1 the runtime failed, or the triggered execution did not complete, or a
 * benchmark missed its target; 2 the config was refused, or a benchmark could not run; 64 bad command
 * line or input.
 *
 * @module
 */
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { constants } from 'node:os'
import { fileURLToPath } from 'node:url'
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander'
import { readClusterStatus } from './cluster/index.js'
import {
  environmentIssues,
  type IsolationLevel,
  loadConfigFile,
  type ResolvedRuntimeConfig,
} from './config/index.js'
import { LogStore } from './durability/index.js'
import { AgentPoolError, ClusterUnavailableError, ConfigError, DurabilityError } from './errors.js'
import type { AgentRuntime, RuntimeStats } from './index.js'
import { checkHandlerModules, runtimeOf } from './runtime/index.js'
import {
  measureWorkloadPoint,
  pointDurations,
  readInputs,
  runSweep,
  writeSweepReport,
} from './sweep/index.js'

/** Exit codes of the `agentpool` command. */
export const ExitCode = { OK: 0, FAILED: 1, CONFIG: 2, USAGE: 64 } as const

const EXIT_CODES_HELP = `
Exit codes:
  0   success
  1   the runtime failed, the triggered execution did not complete, or a benchmark missed its target
  2   the config file was refused (every problem is listed), or a benchmark could not run
  64  bad command line or input`

/** Where the command writes; the real process streams unless a test passes its own. */
export interface CliIO {
  out: (text: string) => void
  err: (text: string) => void
  /** Whether `out` is a terminal (the status line then rewrites itself in place). */
  isTTY: boolean
}

const processIO: CliIO = {
  out: (t) => process.stdout.write(t),
  err: (t) => process.stderr.write(t),
  isTTY: process.stdout.isTTY === true,
}

/** A failure that ends the command with `code` after printing `message` to stderr. */
class CliFailure extends Error {
  constructor(
    readonly exitCode: number,
    message: string,
  ) {
    super(message)
  }
}

/**
 * Runs the command line `argv` (as `process.argv`: node, script, then arguments) and resolves with the
 * exit code. `run` resolves only after a signal stopped the runtime.
 */
export async function main(argv: readonly string[], io: CliIO = processIO): Promise<number> {
  let code: number = ExitCode.OK
  const program = new Command('agentpool')
    .description('Multi-entry-point agents on a multi-threaded worker pool.')
    .configureOutput({ writeOut: io.out, writeErr: io.err })
    .exitOverride()
    .showHelpAfterError('(run with --help for usage)')
    .addHelpText('after', EXIT_CODES_HELP)

  program
    .command('run')
    .description(
      'start the runtime from a config file; print the webhook URL and a live status line; stop with drain on SIGINT/SIGTERM',
    )
    .argument('<config>', 'YAML or JSON config file')
    .addOption(
      new Option('--status-interval <ms>', 'status line period in ms; 0 turns it off')
        .default(1000)
        .argParser(nonNegativeInt),
    )
    .addHelpText('after', EXIT_CODES_HELP)
    .action(async (config: string, opts: { statusInterval: number }) => {
      code = await runCommand(config, opts.statusInterval, io)
    })

  program
    .command('validate')
    .description('check a config file and list its entry points')
    .argument('<config>', 'YAML or JSON config file')
    .addHelpText('after', EXIT_CODES_HELP)
    .action(async (config: string) => {
      code = await validateCommand(config, io)
    })

  program
    .command('trigger')
    .description(
      'run one execution of an entry point (its own trigger stays off) and print its result as JSON',
    )
    .argument('<config>', 'YAML or JSON config file')
    .argument('<entry-point>', 'entry point id')
    .argument('[json]', 'the input, as JSON', 'null')
    .addOption(
      new Option('--timeout <ms>', "overrides the entry point's timeoutMs; 0 means none").argParser(
        nonNegativeInt,
      ),
    )
    .addHelpText('after', EXIT_CODES_HELP)
    .action(async (config: string, entryPoint: string, json: string, opts: { timeout?: number }) => {
      code = await triggerCommand(config, entryPoint, json, opts.timeout, io)
    })

  program
    .command('runs')
    .description(
      "list runs from the config's durable run log, newest first, or show one run (input, attempts, result or error, decisions) as JSON",
    )
    .argument('<config>', 'YAML or JSON config file with a durability section')
    .argument('[execution-id]', 'show this run')
    .addOption(new Option('--status <status>', 'only runs with this status').choices(RUN_STATUSES))
    .option('--entry <entry-point>', 'only runs of this entry point')
    .addOption(new Option('--limit <n>', 'at most this many runs').default(20).argParser(nonNegativeInt))
    .addHelpText('after', EXIT_CODES_HELP)
    .action(
      async (
        config: string,
        executionId: string | undefined,
        opts: { status?: string; entry?: string; limit: number },
      ) => {
        code = await runsCommand(config, executionId, opts, io)
      },
    )

  program
    .command('cluster')
    .description('cluster mode')
    .command('status')
    .description(
      "print the cluster's hosts alive, each entry point's waiting, active and delayed jobs and how executions ended, and goal progress over every host",
    )
    .argument('<config>', 'YAML or JSON config file with a cluster section')
    .option('--json', 'print it as JSON')
    .addHelpText('after', EXIT_CODES_HELP)
    .action(async (config: string, opts: { json?: boolean }) => {
      code = await clusterStatusCommand(config, opts.json === true, io)
    })

  program
    .command('bench')
    .description(
      'find your limits: --sweep <config> --entry <id> --inputs <file.jsonl> runs your handler over pool sizes, tasksPerThread, maxConcurrent and isolation levels; without a config (in a clone of the repository) the bundled suites or sweep',
    )
    .option(
      '--sweep [config]',
      "run the concurrency-limit sweep (on your config's entry point, or the bundled workload)",
    )
    .option('--entry <id>', 'with --sweep <config>: the entry point to drive')
    .option(
      '--inputs <file>',
      'with --sweep <config>: execution inputs, one JSON value per line (used in turn)',
    )
    .addOption(
      new Option('--budget-ms <ms>', 'p99 latency budget of the sweep').default(100).argParser(positiveInt),
    )
    .addOption(
      new Option('--repeat <n>', 'passes per sweep series; the median of each point is kept')
        .default(1)
        .argParser(positiveInt),
    )
    .option('--out-dir <dir>', 'where the sweep writes sweep.json and sweep.svg', 'agentpool-sweep')
    .addOption(
      new Option('--levels <list>', 'isolation levels of the sweep, comma-separated').default(
        'isolated,shared,synchronized',
      ),
    )
    .addOption(
      new Option(
        '--point-ms <ms>',
        'measured window per sweep point (default 5000, 1200 with --quick)',
      ).argParser(positiveInt),
    )
    .option('--quick', 'short budgets')
    .option('--filter <name>', 'without --sweep: run one bundled suite, by name or file stem')
    .addHelpText('after', BENCH_EXIT_CODES_HELP)
    .action(async (opts: BenchOptions) => {
      code = await benchCommand(opts, io)
    })

  try {
    await program.parseAsync([...argv])
    return code
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? ExitCode.OK : ExitCode.USAGE
    if (err instanceof CliFailure) {
      io.err(`${err.message}\n`)
      return err.exitCode
    }
    if (err instanceof ConfigError) {
      io.err(`${err.message}\n`)
      return ExitCode.CONFIG
    }
    // A coded error says what was wrong and what to do; only an unexpected one needs its stack.
    if (err instanceof AgentPoolError) io.err(`agentpool: ${err.code}: ${err.message}\n`)
    else io.err(`agentpool: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`)
    return ExitCode.FAILED
  }
}

function positiveInt(value: string): number {
  const n = Number(value)
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('must be an integer >= 1')
  return n
}

function nonNegativeInt(value: string): number {
  const n = Number(value)
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('must be an integer >= 0')
  return n
}

const RUN_STATUSES = ['queued', 'running', 'completed', 'failed', 'cancelled', 'timed_out']

async function runsCommand(
  path: string,
  executionId: string | undefined,
  opts: { status?: string; entry?: string; limit: number },
  io: CliIO,
): Promise<number> {
  const config = await loadConfigFile(path)
  if (config.durability === undefined) {
    throw new CliFailure(ExitCode.CONFIG, `${path} has no durability section: there is no run log to read`)
  }
  let log: LogStore
  try {
    log = LogStore.openReadOnly(config.durability.path)
  } catch (err) {
    if (err instanceof DurabilityError) throw new CliFailure(ExitCode.FAILED, err.message)
    throw err
  }
  try {
    if (executionId !== undefined) {
      const run = log.lookup(executionId)
      if (run === undefined) {
        throw new CliFailure(
          ExitCode.FAILED,
          `no run ${JSON.stringify(executionId)} in ${config.durability.path}`,
        )
      }
      const records = log.recordsOf(executionId).map((r) => r.record)
      io.out(`${JSON.stringify({ ...run, records }, null, 2)}
`)
      return ExitCode.OK
    }
    const runs = log.list({ status: opts.status, entryPointId: opts.entry, limit: opts.limit })
    io.out(`${'execution id'.padEnd(38)}${'entry point'.padEnd(18)}${'status'.padEnd(11)}attempts  admitted
`)
    for (const r of runs) {
      const admitted = new Date(r.admittedAt).toISOString()
      io.out(`${r.id.padEnd(38)}${r.entryPointId.padEnd(18)}${r.status.padEnd(11)}${String(r.attempts).padEnd(10)}${admitted}
`)
    }
    io.out(`${runs.length} run(s) from ${config.durability.path}
`)
    return ExitCode.OK
  } finally {
    log.close()
  }
}

async function clusterStatusCommand(path: string, json: boolean, io: CliIO): Promise<number> {
  const config = await loadConfigFile(path)
  if (config.cluster === undefined) {
    throw new CliFailure(ExitCode.CONFIG, `${path} has no cluster section: there is no cluster to read`)
  }
  const issues = environmentIssues(config).filter((i) => i.path === 'cluster.redis')
  if (issues.length > 0) throw new ConfigError(issues, config.source)
  let status: Awaited<ReturnType<typeof readClusterStatus>>
  try {
    status = await readClusterStatus(config)
  } catch (err) {
    if (err instanceof ClusterUnavailableError) throw new CliFailure(ExitCode.FAILED, err.message)
    throw err
  }
  if (json) {
    io.out(`${JSON.stringify(status, null, 2)}\n`)
    return ExitCode.OK
  }
  const { stats, goal } = status
  io.out(`cluster ${config.cluster.prefix}:${config.cluster.name}: ${stats.hosts} host(s) alive\n`)
  const columns = ['waiting', 'active', 'delayed', 'completed', 'failed', 'timedOut', 'cancelled'] as const
  io.out(`${'entry point'.padEnd(20)}${columns.map((c) => c.padStart(11)).join('')}\n`)
  for (const [id, e] of Object.entries(stats.entryPoints)) {
    io.out(`${id.padEnd(20)}${columns.map((c) => String(e[c]).padStart(11)).join('')}\n`)
  }
  const m = goal.metrics
  io.out(
    goal.goalId === undefined
      ? `no goal; ${m.totalDecisions} decision(s)\n`
      : `goal ${goal.goalId}: ${(goal.overallProgress * 100).toFixed(1)}% (${goal.recommendation}), ${m.totalDecisions} decision(s), success rate ${(m.successRate * 100).toFixed(1)}% over ${m.executionsTotal} execution(s)\n`,
  )
  return ExitCode.OK
}

/**
 * Reads and checks a config file for what `run` needs: the config itself, every webhook `secretEnv` set,
 * and every handler module loading (on a pool thread, as an execution loads it) with a handler exported.
 * @throws {ConfigError} naming the file and listing every problem.
 */
async function checkedConfig(path: string): Promise<ResolvedRuntimeConfig> {
  const config = await loadConfigFile(path)
  const issues = [...environmentIssues(config), ...(await checkHandlerModules(config))]
  if (issues.length > 0) throw new ConfigError(issues, config.source)
  return config
}

async function validateCommand(path: string, io: CliIO): Promise<number> {
  const config = await checkedConfig(path)
  io.out(`${config.entryPoints.length} entry point(s), config OK: ${path}\n`)
  for (const ep of config.entryPoints)
    io.out(`  ${ep.id.padEnd(24)} ${describeTrigger(ep.trigger).padEnd(32)} ${ep.handler}\n`)
  if (config.goal)
    io.out(`goal ${config.goal.id}: ${config.goal.successCriteria.map((c) => c.id).join(', ')}\n`)
  return ExitCode.OK
}

function describeTrigger(t: ResolvedRuntimeConfig['entryPoints'][number]['trigger']): string {
  switch (t.type) {
    case 'webhook':
      return `webhook ${t.methods.join(',')} ${t.path}${t.secretEnv ? ' (signed)' : ''}`
    case 'timer':
      return t.cron !== undefined
        ? `timer cron "${t.cron}"${t.timezone ? ` ${t.timezone}` : ''}`
        : `timer every ${t.intervalMs} ms`
    case 'event':
      return `event ${t.eventTypes.join(',')}${t.streamId ? ` from ${t.streamId}` : ''}`
    default:
      return t.type
  }
}

async function triggerCommand(
  path: string,
  entryPoint: string,
  json: string,
  timeoutMs: number | undefined,
  io: CliIO,
): Promise<number> {
  let input: unknown
  try {
    input = JSON.parse(json)
  } catch (err) {
    throw new CliFailure(
      ExitCode.USAGE,
      `agentpool trigger: the input is not valid JSON: ${(err as Error).message}`,
    )
  }
  const config = await loadConfigFile(path)
  if (!config.entryPoints.some((ep) => ep.id === entryPoint)) {
    throw new CliFailure(
      ExitCode.USAGE,
      `agentpool trigger: no entry point ${JSON.stringify(entryPoint)} in ${path}; entry points: ${config.entryPoints.map((ep) => ep.id).join(', ')}`,
    )
  }
  // One execution only: no webhook server, timers or event triggers (delegation through ctx.trigger still works).
  const runtime = runtimeOf({
    ...config,
    entryPoints: config.entryPoints.map((ep) => ({ ...ep, trigger: { type: 'manual' as const } })),
  })
  await runtime.start()
  try {
    const result = await runtime.triggerAndWait(
      entryPoint,
      input,
      timeoutMs === undefined ? {} : { timeoutMs },
    )
    io.out(`${JSON.stringify(result, null, 2)}\n`)
    return result.status === 'completed' ? ExitCode.OK : ExitCode.FAILED
  } finally {
    await runtime.stop({ drain: true })
  }
}

async function runCommand(path: string, statusIntervalMs: number, io: CliIO): Promise<number> {
  // Listening before anything starts: a signal during start-up stops the runtime as soon as it is up.
  const stopRequest = stopRequested()
  const runtime = runtimeOf(await checkedConfig(path))
  await runtime.start()
  const eps = runtime.config.entryPoints
  io.out(`agentpool running ${eps.length} entry point(s) on ${runtime.config.pool.threads} thread(s)\n`)
  if (runtime.webhookUrl !== undefined) {
    io.out(`webhook URL: ${runtime.webhookUrl}\n`)
    for (const ep of eps) {
      if (ep.trigger.type === 'webhook')
        io.out(`  ${ep.trigger.methods.join(',')} ${runtime.webhookUrl}${ep.trigger.path} -> ${ep.id}\n`)
    }
    io.out(`  GET ${runtime.webhookUrl}/healthz, GET ${runtime.webhookUrl}/metrics\n`)
  }
  for (const ep of eps)
    if (ep.trigger.type === 'timer') io.out(`  ${describeTrigger(ep.trigger)} -> ${ep.id}\n`)
  io.out(
    'status: per stream running/queued/completed✓/failed✗; press Ctrl+C to stop (admitted executions finish first)\n',
  )

  const status = () => statusLine(runtime)
  const ticker =
    statusIntervalMs > 0
      ? setInterval(() => io.out(io.isTTY ? `\r\x1b[2K${status()}` : `${status()}\n`), statusIntervalMs)
      : undefined
  const signal = await stopRequest
  clearInterval(ticker)
  if (io.isTTY) io.out('\n')
  const waiting = Object.values(runtime.stats().streams).reduce((n, s) => n + s.running + s.queued, 0)
  io.out(
    `${signal}: stopping, draining ${waiting} admitted execution(s) (send SIGINT or SIGTERM again to force)\n`,
  )
  const force = () => {
    io.err('forced stop: admitted executions were not drained\n')
    process.exit(130)
  }
  process.once('SIGINT', force)
  process.once('SIGTERM', force)
  await runtime.stop({ drain: true })
  process.off('SIGINT', force)
  process.off('SIGTERM', force)
  io.out(summary(runtime))
  return ExitCode.OK
}

/** How often `run` looks whether the process that started it is still there. */
const PARENT_CHECK_MS = 250

/**
 * Resolves with what asked `run` to stop: SIGINT, SIGTERM, or the parent process going away. The last
 * covers `npx agentpool run …`: npm does not pass SIGTERM on to the command it started, it exits and
 * leaves the command running with a new parent; seeing that, `run` drains and exits as on SIGTERM.
 */
function stopRequested(): Promise<string> {
  const parent = process.ppid
  return new Promise((resolve) => {
    const done = (why: string) => {
      clearInterval(watch)
      process.off('SIGINT', onSignal)
      process.off('SIGTERM', onSignal)
      resolve(why)
    }
    const onSignal = (signal: NodeJS.Signals) => done(signal)
    process.once('SIGINT', onSignal)
    process.once('SIGTERM', onSignal)
    // Also what keeps `run` alive when nothing else does (api entry points only, no status line).
    const watch = setInterval(() => {
      if (process.ppid !== parent) done(`the parent process (${parent}) exited`)
    }, PARENT_CHECK_MS)
  })
}

/** One line: per stream running/queued/done(failed), then goal progress. */
function statusLine(runtime: AgentRuntime): string {
  const streams = Object.entries(runtime.stats().streams).map(
    ([id, s]) =>
      `${id} ${s.running}r/${s.queued}q/${s.completed}✓${failures(s) > 0 ? `/${failures(s)}✗` : ''}`,
  )
  return `${streams.join('  ')}${goalText(runtime)}`
}

function failures(s: RuntimeStats['streams'][string]): number {
  return s.failed + s.timedOut + s.cancelled
}

function goalText(runtime: AgentRuntime): string {
  if (runtime.config.goal === undefined) return ''
  const g = runtime.outcomes.evaluateGoalProgress()
  return `  | goal ${(g.overallProgress * 100).toFixed(1)}% (${g.recommendation})`
}

/** The end-of-run table: per stream counts and latency, then the goal. */
function summary(runtime: AgentRuntime): string {
  const head = [
    'stream',
    'completed',
    'failed',
    'timed out',
    'cancelled',
    'rejected',
    'p50 ms',
    'p95 ms',
    'p99 ms',
  ]
  const rows = Object.entries(runtime.stats().streams).map(([id, s]) => [
    id,
    s.completed,
    s.failed,
    s.timedOut,
    s.cancelled,
    s.rejected,
    s.latencyMs.p50.toFixed(1),
    s.latencyMs.p95.toFixed(1),
    s.latencyMs.p99.toFixed(1),
  ])
  const cells = [head, ...rows].map((r) => r.map(String))
  const widths = head.map((_, i) => Math.max(...cells.map((r) => r[i]?.length ?? 0)))
  const lines = cells.map((r) =>
    r.map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join('  '),
  )
  const goal = goalText(runtime).replace(/^ {2}\| /, '')
  return `summary:\n${lines.join('\n')}\n${goal ? `${goal}\n` : ''}`
}

const BENCH_EXIT_CODES_HELP = `
Exit codes:
  0   done: every suite met its target, or the sweep found a setting within --budget-ms
  1   a target was missed: a suite below its target, or no sweep setting kept p99 within --budget-ms
  2   could not run: the config or inputs were refused, a handler failed, or the bundled benchmarks
      are not here (they ship with the repository, not the package)
  64  bad command line`

interface BenchOptions {
  sweep?: string | boolean
  entry?: string
  inputs?: string
  budgetMs: number
  repeat: number
  outDir: string
  levels: string
  pointMs?: number
  quick?: boolean
  filter?: string
}

const LEVELS = ['isolated', 'shared', 'synchronized'] as const

async function benchCommand(opts: BenchOptions, io: CliIO): Promise<number> {
  if (opts.sweep !== undefined && opts.filter !== undefined) {
    throw new CliFailure(
      ExitCode.USAGE,
      'agentpool bench: --filter selects a suite and does not apply to --sweep',
    )
  }
  if (typeof opts.sweep === 'string') return sweepCommand(opts.sweep, opts, io)
  if (opts.entry !== undefined || opts.inputs !== undefined) {
    throw new CliFailure(
      ExitCode.USAGE,
      'agentpool bench: --entry and --inputs go with --sweep <config>: agentpool bench --sweep agent.yaml --entry <id> --inputs inputs.jsonl',
    )
  }
  return bundledBench(opts)
}

/** The sweep on the user's own config: their handler, their inputs. */
async function sweepCommand(path: string, opts: BenchOptions, io: CliIO): Promise<number> {
  if (opts.entry === undefined || opts.inputs === undefined) {
    throw new CliFailure(
      ExitCode.USAGE,
      `agentpool bench: --sweep ${path} needs --entry <id> and --inputs <file.jsonl> (one execution input per line)`,
    )
  }
  const levels = opts.levels.split(',').map((l) => l.trim())
  const unknown = levels.filter((l) => !(LEVELS as readonly string[]).includes(l))
  if (unknown.length > 0 || levels.length === 0) {
    throw new CliFailure(
      ExitCode.USAGE,
      `agentpool bench: --levels takes ${LEVELS.join(', ')}; got ${unknown.join(', ')}`,
    )
  }
  const config = await checkedConfig(path)
  if (!config.entryPoints.some((ep) => ep.id === opts.entry)) {
    throw new ConfigError(
      [
        {
          path: 'entryPoints',
          message: `no entry point ${JSON.stringify(opts.entry)} (--entry); entry points: ${config.entryPoints.map((ep) => ep.id).join(', ')}`,
        },
      ],
      config.source,
    )
  }
  const inputs = await readInputs(opts.inputs).catch((err: Error) => {
    throw new CliFailure(ExitCode.CONFIG, `agentpool bench: ${err.message}`)
  })
  const workload = { config, entry: opts.entry, inputs }
  const durations = pointDurations(opts.quick === true)
  if (opts.pointMs !== undefined) {
    durations.durationMs = opts.pointMs
    durations.warmupMs = Math.ceil(opts.pointMs / 4)
  }
  let results: Awaited<ReturnType<typeof runSweep>>
  try {
    results = await runSweep({
      quick: opts.quick === true,
      budgetMs: opts.budgetMs,
      repeat: opts.repeat,
      durations,
      levels: levels as IsolationLevel[],
      measure: (p, d) => measureWorkloadPoint(workload, p, d),
      log: (line) => io.err(`${line}\n`),
    })
  } catch (err) {
    throw new CliFailure(
      ExitCode.CONFIG,
      `agentpool bench: the sweep could not run: ${(err as Error).message}`,
    )
  }
  io.out(await writeSweepReport(results, opts.outDir))
  return results.withinBudget === undefined ? ExitCode.FAILED : ExitCode.OK
}

/** The bundled suites or sweep, which ship with the repository (they run from its TypeScript sources). */
async function bundledBench(opts: BenchOptions): Promise<number> {
  const root = fileURLToPath(new URL('..', import.meta.url))
  const script = fileURLToPath(new URL(opts.sweep ? '../bench/sweep.ts' : '../bench/run.ts', import.meta.url))
  if (!import.meta.url.endsWith('.ts') || !existsSync(script)) {
    throw new CliFailure(
      ExitCode.CONFIG,
      'agentpool bench: the bundled benchmarks ship with the repository, not the package (run them from a clone). To find the limits of your own handler: agentpool bench --sweep <config> --entry <id> --inputs <file.jsonl>',
    )
  }
  const args = opts.sweep
    ? [
        ...(opts.quick ? ['--quick'] : []),
        '--budget-ms',
        String(opts.budgetMs),
        '--repeat',
        String(opts.repeat),
        ...(opts.outDir !== 'agentpool-sweep' ? ['--out-dir', opts.outDir] : []),
      ]
    : [...(opts.quick ? ['--quick'] : []), ...(opts.filter !== undefined ? ['--filter', opts.filter] : [])]
  const child = spawn(process.execPath, ['--import', 'tsx', script, ...args], { cwd: root, stdio: 'inherit' })
  return new Promise((resolve, reject) => {
    child.once('error', reject)
    child.once('exit', (code, signal) => resolve(code ?? 128 + (signal ? constants.signals[signal] : 0)))
  })
}

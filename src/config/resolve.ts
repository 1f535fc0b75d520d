/**
 * `resolveConfig`: validates a {@link RuntimeConfig} (shape, ranges and cross-field rules, every problem
 * at once) and fills every default, producing the {@link ResolvedRuntimeConfig} the rest of the code reads.
 *
 * @module
 */
import { availableParallelism } from 'node:os'
import { resolve } from 'node:path'
import { ConfigError, type ConfigIssue } from '../errors.js'
import { crossFieldChecks } from './checks.js'
import { type ParsedConfig, parseTarget, runtimeConfigSchema, toConfigIssues } from './schema.js'
import type {
  IsolationLevel,
  ResolvedEntryPoint,
  ResolvedRuntimeConfig,
  ResolvedTriggerConfig,
  ScopeIsolation,
} from './types.js'

/** `state.lockBudgetMs` when not set: far above any commit's time, short enough that a stall is noticed. */
const DEFAULT_LOCK_BUDGET_MS = 250

/**
 * `pool.youngGenerationMb` when not set: twice Node's default (48 MiB on 64-bit). A pool thread makes
 * short-lived objects for every execution (its input, context, records, result) besides the handler's own;
 * with the larger young generation the ticket workload's pool threads spent about 4 % less CPU per ticket
 * (docs/benchmarks.md). V8 grows it only as far as a thread's allocation needs.
 */
const DEFAULT_YOUNG_GENERATION_MB = 96

/** Records between two snapshots of the aggregator in the run log (see `DurabilityOptions.snapshotRecords`). */
const DEFAULT_SNAPSHOT_RECORDS = 100_000

/** Options of {@link resolveConfig}. */
export interface ResolveOptions {
  /** Folder against which `baseDir` and relative handler paths resolve. @default process.cwd() */
  baseDir?: string
  /** Where the config came from (a file path), named in the error message. */
  source?: string
}

/**
 * Validates `input` as a {@link RuntimeConfig} and fills its defaults.
 *
 * @throws {ConfigError} listing every problem found, each with its dotted path and the bad value.
 */
export function resolveConfig(input: unknown, opts: ResolveOptions = {}): ResolvedRuntimeConfig {
  const outerBase = resolve(opts.baseDir ?? process.cwd())
  const rawBase = (input as { baseDir?: unknown } | null)?.baseDir
  const baseDir = typeof rawBase === 'string' && rawBase !== '' ? resolve(outerBase, rawBase) : outerBase
  const parsed = runtimeConfigSchema.safeParse(input, { reportInput: true })
  const issues: ConfigIssue[] = parsed.success ? [] : toConfigIssues(parsed.error, input)
  const cross = crossFieldChecks(input, baseDir)
  issues.push(...cross.issues)
  if (!parsed.success || issues.length > 0) throw new ConfigError(issues, opts.source)
  return fill(parsed.data, baseDir, cross.handlers, opts.source)
}

function fill(
  c: ParsedConfig,
  baseDir: string,
  handlers: Map<number, string>,
  source: string | undefined,
): ResolvedRuntimeConfig {
  const isolation = {
    stream: c.state?.isolation?.stream ?? 'shared',
    global: c.state?.isolation?.global ?? 'shared',
  }
  return {
    goal: c.goal && {
      ...c.goal,
      successCriteria: c.goal.successCriteria.map((s) => ({
        ...s,
        metric: s.metric ?? 'success_rate',
        target: parseTarget(s.target) as number,
        weight: s.weight ?? 1,
      })),
      constraints: c.goal.constraints ?? [],
    },
    pool: {
      threads: c.pool?.threads ?? availableParallelism(),
      tasksPerThread: c.pool?.tasksPerThread ?? 4,
      idleTimeoutMs: c.pool?.idleTimeoutMs ?? 30_000,
      maxHeapMb: c.pool?.maxHeapMb ?? 0,
      youngGenerationMb: c.pool?.youngGenerationMb ?? DEFAULT_YOUNG_GENERATION_MB,
    },
    state: {
      isolation,
      maxBytes: c.state?.maxBytes ?? 256 * 1024 * 1024,
      maxKeys: c.state?.maxKeys ?? 1_048_576,
      historySize: c.state?.historySize ?? 1000,
      lockBudgetMs: c.state?.lockBudgetMs ?? DEFAULT_LOCK_BUDGET_MS,
    },
    idempotency: { ttlMs: c.idempotency?.ttlMs ?? 300_000, maxKeys: c.idempotency?.maxKeys ?? 10_000 },
    webhook: {
      host: c.webhook?.host ?? '127.0.0.1',
      port: c.webhook?.port ?? 0,
      bodyLimitBytes: c.webhook?.bodyLimitBytes ?? 1_048_576,
    },
    metrics: c.metrics && { host: c.metrics.host ?? '127.0.0.1', port: c.metrics.port },
    outcomes: {
      maxDecisions: c.outcomes?.maxDecisions ?? 10_000,
      minOutcomes: c.outcomes?.minOutcomes ?? 1,
      adjustAfterDecisions: c.outcomes?.adjustAfterDecisions ?? 20,
      lowProgress: c.outcomes?.lowProgress ?? 0.5,
    },
    events: { historySize: c.events?.historySize ?? 1000 },
    durability: c.durability && {
      path: resolve(baseDir, c.durability.path),
      syncMs: c.durability.syncMs ?? 0,
      retainRunsMs: c.durability.retainRunsMs ?? 7 * 24 * 3_600_000,
      snapshotRecords: c.durability.snapshotRecords ?? DEFAULT_SNAPSHOT_RECORDS,
      synchronous: c.durability.synchronous ?? 'normal',
    },
    cluster: c.cluster && {
      redis: c.cluster.redis,
      prefix: c.cluster.prefix ?? 'agentpool',
      name: c.cluster.name ?? c.goal?.id ?? 'agent',
      stalledMs: c.cluster.stalledMs ?? 30_000,
      keepResults: c.cluster.keepResults ?? 10_000,
    },
    entryPoints: c.entryPoints.map(
      (e, i): ResolvedEntryPoint => ({
        id: e.id,
        name: e.name ?? e.id,
        handler: handlers.get(i) as string,
        trigger: fillTrigger(e.trigger),
        isolation: fillIsolation(e.isolation, isolation),
        priority: e.priority ?? 0,
        maxConcurrent: e.maxConcurrent ?? 10,
        maxQueue: e.maxQueue ?? 1000,
        timeoutMs: e.timeoutMs ?? 30_000,
        maxRetries: e.maxRetries ?? 0,
        maxConflictRetries: e.maxConflictRetries ?? 10,
        clusterMaxConcurrent: e.cluster?.maxConcurrent,
      }),
    ),
    baseDir,
    source,
  }
}

function fillTrigger(t: ParsedConfig['entryPoints'][number]['trigger']): ResolvedTriggerConfig {
  switch (t.type) {
    case 'api':
    case 'manual':
      return { type: t.type }
    case 'webhook':
      return {
        type: 'webhook',
        path: t.path,
        methods: (t.methods ?? ['POST']).map((m) => m.toUpperCase()),
        secretEnv: t.secretEnv,
      }
    case 'timer':
      return {
        type: 'timer',
        intervalMs: t.intervalMs,
        cron: t.cron,
        timezone: t.timezone,
        runImmediately: t.runImmediately ?? false,
      }
    case 'event':
      return {
        type: 'event',
        eventTypes: t.eventTypes,
        streamId: t.streamId,
        excludeOwn: t.excludeOwn ?? true,
      }
  }
}

function fillIsolation(
  own: IsolationLevel | ScopeIsolation | undefined,
  defaults: { stream: IsolationLevel; global: IsolationLevel },
): { stream: IsolationLevel; global: IsolationLevel } {
  if (own === undefined) return { ...defaults }
  if (typeof own === 'string') return { stream: own, global: own }
  return { stream: own.stream ?? defaults.stream, global: own.global ?? defaults.global }
}

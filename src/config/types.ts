/**
 * Public configuration types (`RuntimeConfig`, the shape of the config file too) and their fully
 * resolved internal counterparts. Every public option is optional and documents its default; the
 * resolver in this folder validates and fills them once, and the rest of the code never checks for
 * `undefined` options again.
 *
 * @module
 */

/** How an execution sees and changes one state scope. See docs/architecture.md, "Isolation levels". */
export type IsolationLevel = 'isolated' | 'shared' | 'synchronized' | 'serializable'

/** The isolation levels as a frozen object of their string values (`IsolationLevel.SYNCHRONIZED === 'synchronized'`). */
export const IsolationLevel = Object.freeze({
  ISOLATED: 'isolated',
  SHARED: 'shared',
  SYNCHRONIZED: 'synchronized',
  SERIALIZABLE: 'serializable',
} as const satisfies { [K in IsolationLevel as Uppercase<K>]: K })

/** Isolation per scope. The execution scope is always private and has no level. */
export interface ScopeIsolation {
  /** @default 'shared' */
  stream?: IsolationLevel
  /** @default 'shared' */
  global?: IsolationLevel
}

export interface SuccessCriterion {
  id: string
  description: string
  /** @default 'success_rate' */
  metric?: 'success_rate'
  /** A fraction in [0, 1] or a percentage string such as `'90%'`. */
  target: number | string
  /** Relative weight in `overallProgress`. @default 1 */
  weight?: number
}

/** A success criterion with its defaults filled and its target as a fraction in [0, 1]. Internal. */
export interface ResolvedSuccessCriterion extends SuccessCriterion {
  metric: 'success_rate'
  target: number
  weight: number
}

export interface Constraint {
  id: string
  description: string
  kind: 'hard' | 'soft'
}

/** What the agent is trying to achieve; decisions name the criteria they count toward. */
export interface Goal {
  id: string
  description: string
  successCriteria: SuccessCriterion[]
  /** @default [] */
  constraints?: Constraint[]
}

export interface PoolOptions {
  /** Worker threads. @default os.availableParallelism() */
  threads?: number
  /** Executions one thread runs at once (async handlers interleave at `await`). @default 4 */
  tasksPerThread?: number
  /** An idle thread above the minimum is stopped after this long. @default 30_000 */
  idleTimeoutMs?: number
  /** Per-thread heap limit in MiB (old generation); a thread past it dies with `AGENTPOOL_WORKER_CRASHED`. @default 0 (Node's default) */
  maxHeapMb?: number
  /**
   * Per-thread young generation in MiB (V8's `maxYoungGenerationSizeMb`: where a thread's short-lived
   * objects are made, collected by scavenges). Larger means fewer scavenges and fewer objects promoted to
   * the old generation; V8 grows it up to this size only as the thread allocates. 0: Node's default.
   * @default 96
   */
  youngGenerationMb?: number
}

export interface StateOptions {
  /** Default isolation for every entry point. */
  isolation?: ScopeIsolation
  /** Upper bound of all state regions together, in bytes. @default 256 MiB */
  maxBytes?: number
  /** Upper bound of live keys over all scopes. @default 1_048_576 */
  maxKeys?: number
  /** How many recent changes `recentChanges()` keeps. @default 1000 */
  historySize?: number
  /**
   * Longest time one execution may hold the state commit lock, in ms (≥ 10). An `update` or
   * `transaction` function runs with that lock held, and every other commit waits for it: one that is
   * still running past this budget (an endless loop, say) has its thread stopped, its commit rolled back
   * and its execution failed with `AGENTPOOL_STATE_LOCK_BUDGET`. @default 250
   */
  lockBudgetMs?: number
}

export interface IdempotencyOptions {
  /** How long a key remembers its first execution. @default 300_000 (5 minutes) */
  ttlMs?: number
  /** Keys remembered at once; the oldest is evicted first. @default 10_000 */
  maxKeys?: number
}

/** The SQLite run log (see `docs/reliability.md`). */
export interface DurabilityOptions {
  /** The SQLite file, created with its folder if missing; relative to the config file's folder (or `baseDir`). */
  path: string
  /**
   * Group-commit window: once someone waits for a commit (a `trigger()` or a webhook for its admission, a
   * result for its execution's end), how long the batch still gathers before it goes out. 0 sends it at
   * the end of that event loop turn; under load batches form anyway (while one commits, the next gathers).
   * What nobody waits for joins the next batch, or goes out on its own within 10 ms. @default 0
   */
  syncMs?: number
  /** How long finished runs stay in the log. @default 604_800_000 (7 days) */
  retainRunsMs?: number
  /**
   * Records (decisions, outcomes, problems, violations) written between two snapshots of the aggregator
   * in the log. The log's writer thread folds them into a new snapshot, in steps between commits; a
   * restart restores it and replays only the records after it, and records it covers are deleted with
   * their runs. A clean stop always writes one. @default 100_000
   */
  snapshotRecords?: number
  /**
   * `'normal'` survives a killed process; `'full'` also survives power loss or an OS crash, at the cost
   * of an fsync per commit. @default 'normal'
   */
  synchronous?: 'normal' | 'full'
}

/** How to reach Redis: a `redis://` / `rediss://` URL, or its parts. */
export interface RedisConnectionOptions {
  /** @default '127.0.0.1' */
  host?: string
  /** @default 6379 */
  port?: number
  username?: string
  password?: string
  /** Database number. @default 0 */
  db?: number
  /** Connect with TLS. @default false */
  tls?: boolean
}

/** Cluster mode: every process started with the config is a host of one agent (see `docs/cluster.md`). */
export interface ClusterOptions {
  /** Redis holding the queues; when absent, the `REDIS_URL` environment variable at `start()`. */
  redis?: string | RedisConnectionOptions
  /** First part of every Redis key. @default 'agentpool' */
  prefix?: string
  /** The agent's name in Redis keys: hosts with the same prefix and name share queues. @default the goal's id, else 'agent' */
  name?: string
  /**
   * How long a host may go without renewing its hold on a running job before the job counts as stalled
   * and runs on another host (also how often hosts look for stalled jobs). @default 30_000
   */
  stalledMs?: number
  /** Finished jobs kept per entry point for `waitForExecution`. @default 10_000 */
  keepResults?: number
}

export interface WebhookOptions {
  /** @default '127.0.0.1' */
  host?: string
  /** 0 picks any free port (see `runtime.webhookUrl`). @default 0 */
  port?: number
  /** @default 1_048_576 (1 MiB) */
  bodyLimitBytes?: number
}

export interface MetricsOptions {
  /** @default '127.0.0.1' */
  host?: string
  /** 0 picks any free port (see `runtime.metricsUrl`). */
  port: number
}

/** What starts an entry point's executions (besides `runtime.trigger`, which works for every kind). */
export type TriggerConfig =
  | { type: 'api' }
  | { type: 'manual' }
  | {
      type: 'webhook'
      /** Literal path such as `/tickets`: letters, digits and `- . _ ~ % /`; not `/healthz` or `/metrics`. */
      path: string
      /** Any of GET, POST, PUT, PATCH, DELETE. @default ['POST'] */
      methods?: string[]
      /** Environment variable holding the HMAC-SHA256 signing secret; requests must then be signed. */
      secretEnv?: string
    }
  | {
      type: 'timer'
      /** Fixed-rate period; exactly one of `intervalMs` and `cron`. */
      intervalMs?: number
      /** 5- or 6-field cron expression (seconds first when 6), or a nickname such as `@hourly`. */
      cron?: string
      /** IANA time zone of `cron`. @default the process's zone */
      timezone?: string
      /** Also fire once at start. @default false */
      runImmediately?: boolean
    }
  | {
      type: 'event'
      /** Event types that start an execution (the event is its input). */
      eventTypes: string[]
      /** Only events of this stream. */
      streamId?: string
      /** Ignore events of this entry point's own stream. @default true */
      excludeOwn?: boolean
    }

export interface EntryPointConfig {
  /** Unique id; also the id of the entry point's stream. */
  id: string
  name?: string
  /** Handler module path, resolved against the config file's folder (or `baseDir`). */
  handler: string
  trigger: TriggerConfig
  /** Overrides `state.isolation`: one level for both scopes, or per scope. */
  isolation?: IsolationLevel | ScopeIsolation
  /** Queued executions of this stream start higher priority first. @default 0 */
  priority?: number
  /** Executions of this stream running at once. @default 10 */
  maxConcurrent?: number
  /** Executions of this stream waiting at once; past it `trigger` fails with `AGENTPOOL_QUEUE_FULL`. @default 1000 */
  maxQueue?: number
  /** Per-execution time limit; 0 means none. @default 30_000 */
  timeoutMs?: number
  /** Extra attempts after a failed one (not after a timeout or cancellation). @default 0 */
  maxRetries?: number
  /**
   * `serializable` scopes: how many times an execution whose commit conflicted re-runs from the start
   * (after a short jittered backoff) before it fails with `AGENTPOOL_STATE_CONFLICT`. @default 10
   */
  maxConflictRetries?: number
  /** Cluster mode only. */
  cluster?: {
    /** Executions of this entry point running at once over all hosts (BullMQ global concurrency); none when absent. */
    maxConcurrent?: number
  }
}

/** Limits of the outcome aggregator. */
export interface OutcomesOptions {
  /** Decisions kept for queries (the oldest are dropped first; counters are kept). @default 10_000 */
  maxDecisions?: number
  /** Outcomes a criterion needs before it can be met. @default 1 */
  minOutcomes?: number
  /** Decisions after which low progress makes the recommendation `'adjust'`. @default 20 */
  adjustAfterDecisions?: number
  /** Overall progress below which the recommendation is `'adjust'` (after `adjustAfterDecisions`). @default 0.5 */
  lowProgress?: number
}

/** Limits of the event bus. */
export interface EventsOptions {
  /** Events `history()` keeps. @default 1000 */
  historySize?: number
}

export interface RuntimeConfig {
  goal?: Goal
  pool?: PoolOptions
  state?: StateOptions
  idempotency?: IdempotencyOptions
  webhook?: WebhookOptions
  /** A Prometheus metrics server of its own (`GET /metrics`, `GET /healthz`); none when absent. */
  metrics?: MetricsOptions
  outcomes?: OutcomesOptions
  events?: EventsOptions
  /** Keeps admissions, results, state and goal counters in an SQLite file, so a restart loses nothing acknowledged. */
  durability?: DurabilityOptions
  /** Runs the agent on several hosts: admission through BullMQ queues on Redis (see `docs/cluster.md`). */
  cluster?: ClusterOptions
  entryPoints: EntryPointConfig[]
  /** Folder against which relative handler paths resolve. @default the config file's folder, else process.cwd() */
  baseDir?: string
}

/**
 * A trigger with its defaults filled in (still assignable to {@link TriggerConfig}). Webhook methods are
 * upper-case and default to `['POST']`; `excludeOwn` defaults to `true` so an entry point never feeds on
 * its own stream's events unless asked to; `runImmediately` defaults to `false`. Internal.
 */
export type ResolvedTriggerConfig =
  | { type: 'api' }
  | { type: 'manual' }
  | { type: 'webhook'; path: string; methods: string[]; secretEnv: string | undefined }
  | {
      type: 'timer'
      intervalMs: number | undefined
      cron: string | undefined
      timezone: string | undefined
      runImmediately: boolean
    }
  | { type: 'event'; eventTypes: string[]; streamId: string | undefined; excludeOwn: boolean }

/** Every option filled in. Internal. */
export interface ResolvedEntryPoint {
  id: string
  name: string
  /** Absolute path of the handler module. */
  handler: string
  trigger: ResolvedTriggerConfig
  isolation: { stream: IsolationLevel; global: IsolationLevel }
  priority: number
  maxConcurrent: number
  maxQueue: number
  timeoutMs: number
  maxRetries: number
  maxConflictRetries: number
  /** Cluster-wide limit of running executions; undefined for none. */
  clusterMaxConcurrent: number | undefined
}

/** Every option filled in. Internal. */
export interface ResolvedRuntimeConfig {
  /** Criteria have `metric` and `weight` filled and `target` as a fraction in [0, 1] (`'90%'` → 0.9). */
  goal: (Goal & { constraints: Constraint[]; successCriteria: ResolvedSuccessCriterion[] }) | undefined
  pool: {
    threads: number
    tasksPerThread: number
    idleTimeoutMs: number
    maxHeapMb: number
    youngGenerationMb: number
  }
  state: {
    isolation: { stream: IsolationLevel; global: IsolationLevel }
    maxBytes: number
    maxKeys: number
    historySize: number
    lockBudgetMs: number
  }
  idempotency: { ttlMs: number; maxKeys: number }
  webhook: { host: string; port: number; bodyLimitBytes: number }
  metrics: { host: string; port: number } | undefined
  outcomes: Required<OutcomesOptions>
  events: Required<EventsOptions>
  /** `path` is absolute. */
  durability:
    | {
        path: string
        syncMs: number
        retainRunsMs: number
        snapshotRecords: number
        synchronous: 'normal' | 'full'
      }
    | undefined
  /** `redis` undefined: read `REDIS_URL` at `start()`. */
  cluster: ResolvedClusterOptions | undefined
  entryPoints: ResolvedEntryPoint[]
  baseDir: string
  /** The config file it was read from, named in later errors. */
  source: string | undefined
}

/** Cluster options with defaults filled in. Internal. */
export interface ResolvedClusterOptions {
  redis: string | RedisConnectionOptions | undefined
  prefix: string
  name: string
  stalledMs: number
  keepResults: number
}

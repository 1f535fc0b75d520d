/**
 * `AgentRuntime`: the public facade. It validates the config, owns the shared state regions, the record
 * channel, the event bus, the outcome aggregator and the pool, and delegates admission and dispatch to the
 * private {@link RuntimeEngine}. Main thread only; no method blocks.
 *
 * @module
 */
import { randomUUID } from 'node:crypto'
import { RecordChannel } from '../channel/index.js'
import { ClusterHost, type RuntimeCluster } from '../cluster/index.js'
import {
  environmentIssues,
  loadConfigFile,
  type ResolvedClusterOptions,
  type ResolvedRuntimeConfig,
  type RuntimeConfig,
  resolveConfig,
} from '../config/index.js'
import { exposeDelegation } from '../delegation/index.js'
import { decodeRecord, RunLog } from '../durability/index.js'
import {
  ConfigError,
  DurabilityError,
  HandlerModuleError,
  InvalidArgumentError,
  NotRunningError,
  WorkerCrashedError,
} from '../errors.js'
import { EventBus } from '../events/index.js'
import {
  type AggregatedRecord,
  type AggregatorSnapshot,
  OutcomeAggregator,
  routeRecords,
} from '../outcomes/index.js'
import { API_META, MANUAL_META, type Recovery, type RunRow, type WireRecord } from '../protocol.js'
import { SharedBufferManager } from '../state/index.js'
import { startTriggers, type Triggers } from '../triggers/index.js'
import { RuntimeEngine } from './engine.js'
import { LocalSources } from './local-sources.js'
import type { AdmissionSource, AdmitRequest, ResultSource } from './sources.js'
import type { ExecutionResult, RuntimeStats, StopOptions, TriggerOptions } from './types.js'
import { WorkerPool } from './worker-pool.js'

/** Configs that already went through {@link resolveConfig} (from {@link AgentRuntime.fromConfigFile}). */
const preResolved = new WeakSet<object>()

/** How long `start()` waits for the pool threads to start and load the handler modules. */
const WARM_UP_LIMIT_MS = 60_000

/** Record rings kept beyond one per thread, for threads that replace dead ones before the old ring is freed. */
const SPARE_RINGS = 4

type Phase = 'created' | 'starting' | 'running' | 'stopping' | 'stopped'

/**
 * Runs a multi-entry-point agent: each entry point feeds its own stream of executions, every execution
 * runs on a pool thread, and decisions, outcomes and events come back to {@link outcomes} and
 * {@link events}.
 *
 * ```ts
 * const runtime = new AgentRuntime({ entryPoints: [{ id: 'tickets', handler: './tickets.ts', trigger: { type: 'api' } }] })
 * await runtime.start()
 * const result = await runtime.triggerAndWait('tickets', { ticketId: 'T-1' })
 * await runtime.stop()
 * ```
 */
export class AgentRuntime {
  /** Lifecycle, execution, state, goal and custom events. */
  readonly events: EventBus
  /** The shared state regions; the same `StreamBuffer` API as handlers get, for the main thread. */
  readonly state: SharedBufferManager
  /** Decisions and outcomes of every stream, and progress toward the goal. */
  readonly outcomes: OutcomeAggregator
  /** The resolved configuration (every default filled in). */
  readonly config: ResolvedRuntimeConfig
  private readonly runtimeId = randomUUID()
  /** Entry points with a `manual` trigger: their executions see `ctx.meta.trigger === 'manual'`. */
  private readonly manual: ReadonlySet<string>
  private readonly engine: RuntimeEngine
  private readonly channel: RecordChannel
  private pool: WorkerPool | undefined
  private triggers: Triggers | undefined
  private delegation: { close(): void } | undefined
  private phase: Phase = 'created'
  /** The run log, when `durability` is configured (opened by `start()`). */
  private log: RunLog | undefined
  /** Where executions are admitted and results awaited: this process's engine, or the cluster's queues. */
  private admission: AdmissionSource
  private results: ResultSource
  /** This process's engine as admission and result source (replaced by the host in cluster mode). */
  private readonly local: LocalSources
  private host: ClusterHost | undefined
  /**
   * Cluster mode: the cluster's stats and goal progress over every host, and cluster-wide timer controls.
   * Its methods reject with `AGENTPOOL_INVALID_ARGUMENT` when the config has no `cluster` section.
   */
  readonly cluster: RuntimeCluster = {
    stats: async () => this.requireHost('cluster.stats').stats(),
    goalProgress: async () => this.requireHost('cluster.goalProgress').goalProgress(),
    pauseTimer: async (id) => this.requireHost('cluster.pauseTimer').pauseTimer(id),
    resumeTimer: async (id) => this.requireHost('cluster.resumeTimer').resumeTimer(id),
    timerStats: async () => this.requireHost('cluster.timerStats').timerStats(),
  }

  /** @throws ConfigError naming every invalid field and its value. */
  constructor(config: RuntimeConfig) {
    this.config = preResolved.has(config)
      ? (config as unknown as ResolvedRuntimeConfig)
      : resolveConfig(config, config?.baseDir === undefined ? {} : { baseDir: config.baseDir })
    const { pool, goal } = this.config
    this.manual = new Set(this.config.entryPoints.filter((e) => e.trigger.type === 'manual').map((e) => e.id))
    this.events = new EventBus({ historySize: this.config.events.historySize })
    const durable = this.config.durability !== undefined
    this.outcomes = new OutcomeAggregator(goal, {
      ...this.config.outcomes,
      bus: this.events,
      // The embedding service's own decisions and outcomes are logged like a handler's.
      ...(durable
        ? {
            onMainRecord: (record) =>
              this.log?.append({ op: 'record', executionId: record.executionId, record }),
          }
        : {}),
    })
    this.state = createState(this.config)
    this.channel = RecordChannel.create({ slots: pool.threads + SPARE_RINGS })
    const sinks = { aggregator: this.outcomes, bus: this.events }
    this.engine = new RuntimeEngine(this.config, this.runtimeId, this.events, this.state, {
      // One goal evaluation per frame, not per record.
      onRecords: durable
        ? (records, source, from, to) => {
            routeRecords(records, sinks, source, from, to)
            this.journalRecords(records, from, to)
          }
        : (records, source, from, to) => void routeRecords(records, sinks, source, from, to),
      drainRecords: () => {
        this.channel.drain()
      },
      ...(durable ? { journal: (op) => this.log?.append(op) } : {}),
    })
    this.channel.onRecords((records, source) => this.engine.consume(records, source))
    this.local = new LocalSources(
      this.engine,
      () => this.log,
      (id) => this.fromLog(id),
    )
    this.admission = this.local
    this.results = this.local
  }

  private metaOf(entryPointId: string): Readonly<Record<string, unknown>> {
    return this.manual.size > 0 && this.manual.has(entryPointId) ? MANUAL_META : API_META
  }

  /** Reads a YAML or JSON config file; handler paths resolve against the file's folder. */
  static async fromConfigFile(path: string): Promise<AgentRuntime> {
    return runtimeOf(await loadConfigFile(path))
  }

  /** The webhook server's base URL, once started, when any entry point has a webhook trigger. */
  get webhookUrl(): string | undefined {
    return this.triggers?.webhookUrl
  }

  /** The metrics server's base URL, once started, when the config has `metrics`. */
  get metricsUrl(): string | undefined {
    return this.triggers?.metricsUrl
  }

  /**
   * The runtime's figures as Prometheus text (what `GET /metrics` serves): executions by stream and
   * status, latency, queue depth, pool threads and utilization, state keys, bytes and conflicts, timer
   * ticks. Without a webhook or metrics server, execution durations are observed from the first call on.
   * @throws {NotRunningError} before `start()`.
   */
  metrics(): Promise<string> {
    return this.requireTriggers('metrics').metrics()
  }

  /** Starts the pool threads, the record channel, the webhook server and the timers. */
  async start(): Promise<void> {
    if (this.phase !== 'created') {
      throw new NotRunningError(
        `start(): the runtime was already ${this.phase === 'stopped' ? 'stopped' : 'started'}`,
      )
    }
    const unset = environmentIssues(this.config)
    if (unset.length > 0) throw new ConfigError(unset, this.config.source)
    this.phase = 'starting'
    let recovery: Recovery | undefined
    if (this.config.durability !== undefined) {
      try {
        this.log = await RunLog.open({
          ...this.config.durability,
          goal: this.config.goal,
          outcomes: this.config.outcomes,
        })
        const engine = this.engine
        this.log.moreComing = () => engine.unfinished > 0
        recovery = await this.log.recover()
        this.restore(recovery)
      } catch (err) {
        await this.log?.close()
        this.log = undefined
        this.phase = 'stopped'
        throw err
      }
    }
    this.pool = new WorkerPool(
      this.config,
      { runtimeId: this.runtimeId, channel: this.channel.handles, state: this.state.handles },
      {
        onThreadExit: (threadId) => {
          // What the thread published before dying is delivered first, then its ring and locks are freed.
          this.channel.releaseThread(threadId)
          this.state.threadExited(threadId)
          this.engine.threadExited(threadId)
        },
      },
    )
    await this.warmUp(this.pool)
    this.channel.listen(() => this.engine.busy())
    this.delegation = exposeDelegation(this.runtimeId, (entryPointId, input, parent) =>
      this.admitAndWait({
        entryPointId,
        input,
        opts: {
          correlationId: parent.correlationId,
          meta: { trigger: 'delegation', parentExecutionId: parent.executionId },
        },
        depth: this.engine.depthOf(parent.executionId) + 1,
        delegated: true,
      }),
    )
    this.engine.attach(this.pool)
    if (recovery !== undefined) this.engine.recover(recovery)
    if (this.config.cluster !== undefined) await this.joinCluster(this.config.cluster)
    for (const ep of this.config.entryPoints) {
      this.events.publish({ type: 'stream_started', streamId: ep.id, data: { entryPointId: ep.id } })
    }
    const host = this.host
    this.triggers = await this.startTriggersOrStop(
      {
        trigger: (id, input, opts = {}) => {
          const { depth, onAdmitted, ...rest } = opts
          return this.admission.admit({
            entryPointId: id,
            input,
            opts: rest,
            depth: depth ?? 0,
            delegated: false,
            ...(onAdmitted === undefined ? {} : { onAdmitted }),
          })
        },
        events: this.events,
        stats: () => this.stats(),
        stateStats: () => this.state.stats(),
        depthOf: (id) => this.engine.depthOf(id),
        ...(host === undefined ? {} : { clusterQueues: () => host.queueCounts() }),
      },
      this.config,
      recovery?.timers,
      // In cluster mode timers are the queues' job schedulers, not this process's.
      { timers: this.config.cluster === undefined },
    )
    this.phase = 'running'
  }

  /**
   * Admits one execution and returns its id as soon as it is queued.
   * @throws UnknownEntryPointError, NotRunningError, QueueFullError (nothing admitted is affected).
   */
  async trigger(entryPointId: string, input?: unknown, opts?: TriggerOptions): Promise<string> {
    this.checkOptions(opts)
    return this.admission.admit(this.apiRequest(entryPointId, input, opts))
  }

  /** Admits one execution and resolves with its result once it is final and its records are consumed. */
  triggerAndWait<Output = unknown>(
    entryPointId: string,
    input?: unknown,
    opts?: TriggerOptions,
  ): Promise<ExecutionResult<Output>> {
    try {
      this.checkOptions(opts)
    } catch (err) {
      // Like every other failure here: a rejected promise, never a synchronous throw.
      return Promise.reject(err)
    }
    return this.admitAndWait(this.apiRequest(entryPointId, input, opts)) as Promise<ExecutionResult<Output>>
  }

  /**
   * Resolves with an execution's result (at once if it already ended; results are kept for the most recent
   * 10 000 executions).
   * @throws InvalidArgumentError for an id this runtime does not know.
   */
  async waitForExecution<Output = unknown>(executionId: string): Promise<ExecutionResult<Output>> {
    if (typeof executionId !== 'string' || executionId === '') {
      throw new InvalidArgumentError(`execution id must be a non-empty string, got ${String(executionId)}`)
    }
    const result = await this.results.wait(executionId)
    if (result === undefined) {
      throw new InvalidArgumentError(`unknown execution id ${JSON.stringify(executionId)}`, { executionId })
    }
    return result as ExecutionResult<Output>
  }

  /** An api (or manual) trigger's admission. */
  private apiRequest(entryPointId: string, input: unknown, opts: TriggerOptions | undefined): AdmitRequest {
    return {
      entryPointId,
      input,
      opts: { meta: this.metaOf(entryPointId), ...opts },
      depth: 0,
      delegated: false,
    }
  }

  /**
   * Admits through the admission source and waits through the result source. In-process (no cluster),
   * both are this process's engine: admitted at once, and the promise is the result's (a caller that
   * waits for many pays for no chain of promises per execution). May throw synchronously there.
   */
  private admitAndWait(request: AdmitRequest): Promise<ExecutionResult> {
    if (this.admission !== this.local) return this.admitAndWaitAway(request)
    try {
      return this.local.admitAndWait(request)
    } catch (err) {
      return Promise.reject(err)
    }
  }

  /** {@link admitAndWait} through sources elsewhere (cluster mode). */
  private async admitAndWaitAway(request: AdmitRequest): Promise<ExecutionResult> {
    request.resultAwaited = true
    const id = await this.admission.admit(request)
    const result = await this.results.wait(id, request.entryPointId)
    // The id was just admitted: a source that does not know it lost it.
    if (result === undefined)
      throw new InvalidArgumentError(`execution ${id} is not known to its result source`)
    return result
  }

  /**
   * Cluster mode: this process becomes a host. Admission and results go through the cluster's queues;
   * the jobs this host takes run on its own engine.
   */
  private async joinCluster(options: ResolvedClusterOptions): Promise<void> {
    try {
      this.host = await ClusterHost.start(this.config, options, {
        run: (r, runAs) => {
          const id = this.engine.admit(r.entryPointId, r.input, r.opts, r.depth, r.delegated, runAs)
          return this.engine.wait(id)!
        },
        decisionsOf: (streamId, executionId) => this.outcomes.decisionsByExecution(streamId, executionId),
        timerFired: (entryPointId, executionId) =>
          this.events.publish({
            type: 'trigger_fired',
            streamId: entryPointId,
            executionId,
            // A timer's execution starts its own chain: its correlation id is its execution id.
            correlationId: executionId,
            data: { entryPointId, triggerType: 'timer' },
          }),
      })
    } catch (err) {
      this.phase = 'running'
      await this.stop({ drain: false })
      throw err
    }
    this.admission = this.host
    this.results = this.host
  }

  private requireHost(what: string): ClusterHost {
    if (this.config.cluster === undefined) {
      throw new InvalidArgumentError(`${what}(): the config has no cluster section`)
    }
    if (this.host === undefined) throw new NotRunningError(`${what}()`)
    return this.host
  }

  /** Per-stream counters and latency percentiles, and pool figures. */
  stats(): RuntimeStats {
    return this.engine.stats()
  }

  /**
   * Stops a timer entry point from firing until {@link resumeTimer}.
   * @throws InvalidArgumentError in cluster mode: use `await runtime.cluster.pauseTimer(id)` (cluster-wide).
   */
  pauseTimer(entryPointId: string): void {
    this.refuseInCluster('pauseTimer')
    this.requireTriggers('pauseTimer').pauseTimer(entryPointId)
  }

  resumeTimer(entryPointId: string): void {
    this.refuseInCluster('resumeTimer')
    this.requireTriggers('resumeTimer').resumeTimer(entryPointId)
  }

  /** Timers run cluster-wide in cluster mode: their controls are async and live on `runtime.cluster`. */
  private refuseInCluster(what: string): void {
    if (this.config.cluster !== undefined) {
      throw new InvalidArgumentError(
        `${what}(): in cluster mode timers are cluster-wide; use await runtime.cluster.${what}(id)`,
      )
    }
  }

  /** Next fire time and counters of every timer entry point. */
  timerStats(): ReturnType<Triggers['timerStats']> {
    return this.triggers?.timerStats() ?? {}
  }

  /**
   * Stops triggers, then either lets every admitted execution finish (`drain: true`, the default) or
   * cancels them, delivers all records, and stops the threads.
   */
  async stop(opts: StopOptions = {}): Promise<void> {
    if (this.phase === 'stopped' || this.phase === 'stopping') return
    const wasStarted = this.phase !== 'created'
    this.phase = 'stopping'
    await this.triggers?.stop()
    // The host stops taking jobs first: with drain, the ones it holds finish and are reported to Redis.
    await this.host?.stop({ drain: opts.drain ?? true })
    await this.engine.stop({ drain: opts.drain ?? true })
    this.delegation?.close()
    this.channel.close()
    await this.pool?.close()
    this.channel.drain()
    await this.log?.close()
    if (wasStarted) {
      for (const ep of this.config.entryPoints) {
        this.events.publish({ type: 'stream_stopped', streamId: ep.id, data: { entryPointId: ep.id } })
      }
    }
    this.phase = 'stopped'
  }

  /** Starts the triggers; if one cannot start (a port in use), stops everything started so far. */
  private async startTriggersOrStop(...args: Parameters<typeof startTriggers>): Promise<Triggers> {
    try {
      return await startTriggers(...args)
    } catch (err) {
      this.phase = 'running'
      await this.stop({ drain: false })
      throw err
    }
  }

  /**
   * Waits for every pool thread to start and load the handlers. A thread that never starts would otherwise
   * hang `start()` for ever (seen once in a long benchmark sweep, cause not yet known): past
   * {@link WARM_UP_LIMIT_MS} the pool is closed and `start()` fails with a clear error instead.
   */
  private async warmUp(pool: WorkerPool): Promise<void> {
    const handlers = [...new Set(this.config.entryPoints.map((ep) => ep.handler))]
    let timer: NodeJS.Timeout | undefined
    const limit = new Promise<'late'>((resolve) => {
      timer = setTimeout(() => resolve('late'), WARM_UP_LIMIT_MS)
    })
    try {
      const outcome = await Promise.race([pool.warmUp(handlers, this.config.pool.tasksPerThread), limit])
      if (outcome === 'late') {
        await pool.close()
        this.phase = 'stopped'
        throw new WorkerCrashedError(
          `start(): the pool threads did not all start within ${WARM_UP_LIMIT_MS / 1000} s; the pool was closed`,
        )
      }
      const failed = this.config.entryPoints.filter((ep) => outcome[ep.handler] !== undefined)
      if (failed.length > 0) {
        await pool.close()
        this.phase = 'stopped'
        const from = this.config.source === undefined ? '' : ` (config ${this.config.source})`
        throw new HandlerModuleError(
          `start(): handler modules did not load${from}; nothing was started:\n${failed.map((ep) => `  - entry point ${ep.id}: ${outcome[ep.handler]}`).join('\n')}`,
          { entryPoints: failed.map((ep) => ep.id) },
        )
      }
    } finally {
      clearTimeout(timer)
    }
  }

  /**
   * Puts back what the run log kept: stream and global state (through the public buffer API, so any
   * isolation level reads it as committed) and the aggregator: the log's snapshot of it (`compaction.ts`),
   * then the records made after the snapshot, replayed in the order they were consumed (its counters and
   * retained decisions come out as they were).
   * @throws DurabilityError when the snapshot was written by a newer agentpool.
   */
  private restore(recovery: Recovery): void {
    const buffers = new Map<string, ReturnType<SharedBufferManager['createBuffer']>>()
    for (const s of recovery.state) {
      let buffer = buffers.get(s.streamId)
      if (buffer === undefined) {
        buffer = this.state.createBuffer(
          `recovery:${this.runtimeId}`,
          s.streamId || RECOVERY_STREAM,
          'shared',
        )
        buffers.set(s.streamId, buffer)
      }
      buffer.write(s.key, s.value, { scope: s.scope })
    }
    this.outcomes.batch(() => {
      if (recovery.snapshot !== undefined) {
        try {
          this.outcomes.restore(recovery.snapshot as AggregatorSnapshot, decodeRecord)
        } catch (err) {
          throw new DurabilityError(
            this.config.durability!.path,
            `holds a snapshot of the goal's counters this version cannot read (${(err as Error).message}); it was written by a newer agentpool`,
            err,
          )
        }
      }
      for (const r of recovery.records) this.outcomes.ingest(r as AggregatedRecord)
    })
  }

  /** Records the run log keeps: committed stream/global changes and the aggregator's records. */
  private journalRecords(records: WireRecord[], from: number, to: number): void {
    const log = this.log
    if (log === undefined) return
    for (let i = from; i < to; i++) {
      const r = records[i]!
      switch (r.k) {
        case 'state_change':
          if (r.scope === 'execution' || r.version === undefined) break
          // The change is an effect of its execution: a held admission goes out with it.
          log.release(r.executionId)
          log.append({
            op: 'state',
            scope: r.scope,
            streamId: r.scope === 'stream' ? r.streamId : '',
            key: r.key,
            value: r.new,
            deleted: r.new === undefined,
            version: r.version,
          })
          break
        case 'decision':
        case 'outcome':
        case 'problem':
        case 'violation':
          log.append({ op: 'record', executionId: r.executionId, record: r })
          break
      }
    }
  }

  /** A run of an earlier process, from the run log. */
  private async fromLog(executionId: string): Promise<ExecutionResult | undefined> {
    const run = await this.log?.lookup(executionId)
    return run === undefined ? undefined : resultOf(run)
  }

  private checkOptions(opts: TriggerOptions | undefined): void {
    checkOptions(opts, this.config.cluster !== undefined)
  }

  private requireTriggers(what: string): Triggers {
    if (this.triggers === undefined) throw new NotRunningError(`${what}()`)
    return this.triggers
  }
}

/**
 * A runtime for a config already resolved (by `loadConfigFile` or `resolveConfig`, then perhaps adjusted
 * by the caller): it is not validated again. Internal; the CLI uses it.
 */
export function runtimeOf(config: ResolvedRuntimeConfig): AgentRuntime {
  preResolved.add(config)
  return new AgentRuntime(config as unknown as RuntimeConfig)
}

/** The state regions; sizes they cannot hold (say `maxBytes` too small for `maxKeys`) are a config error. */
function createState(config: ResolvedRuntimeConfig): SharedBufferManager {
  const { maxBytes, maxKeys, historySize } = config.state
  try {
    return SharedBufferManager.create({ maxBytes, maxKeys, historySize })
  } catch (err) {
    if (!(err instanceof InvalidArgumentError)) throw err
    throw new ConfigError([{ path: 'state.maxBytes', message: err.message, value: maxBytes }])
  }
}

function checkOptions(opts: TriggerOptions | undefined, cluster: boolean): void {
  if (opts === undefined) return
  if (typeof opts !== 'object' || opts === null) {
    throw new InvalidArgumentError(`trigger options must be an object, got ${typeof opts}`)
  }
  const { priority, timeoutMs, idempotencyKey, correlationId, signal } = opts
  if (priority !== undefined && !Number.isFinite(priority)) {
    throw new InvalidArgumentError(`opts.priority must be a finite number, got ${String(priority)}`)
  }
  if (timeoutMs !== undefined && !(Number.isFinite(timeoutMs) && timeoutMs >= 0)) {
    throw new InvalidArgumentError(`opts.timeoutMs must be a number ≥ 0, got ${String(timeoutMs)}`)
  }
  if (idempotencyKey !== undefined && (typeof idempotencyKey !== 'string' || idempotencyKey.length === 0)) {
    throw new InvalidArgumentError(
      `opts.idempotencyKey must be a non-empty string, got ${String(idempotencyKey)}`,
    )
  }
  if (correlationId !== undefined && typeof correlationId !== 'string') {
    throw new InvalidArgumentError(`opts.correlationId must be a string, got ${typeof correlationId}`)
  }
  if (signal !== undefined && !(signal instanceof AbortSignal)) {
    throw new InvalidArgumentError('opts.signal must be an AbortSignal')
  }
  if (signal !== undefined && cluster) {
    throw new InvalidArgumentError(
      'opts.signal is not supported in cluster mode: the execution may run on another host; set timeoutMs instead',
    )
  }
}

/** The stream id global keys are restored through (any stream's buffer writes the one global scope). */
const RECOVERY_STREAM = 'agentpool-recovery'

/** A finished run from the log as an {@link ExecutionResult}; undefined while it has not ended. */
function resultOf(run: RunRow): ExecutionResult | undefined {
  if (run.status === 'queued' || run.status === 'running' || run.completedAt === null) return undefined
  const startedAt = run.startedAt ?? run.completedAt
  const result: ExecutionResult = {
    executionId: run.id,
    streamId: run.entryPointId,
    correlationId: run.correlationId,
    status: run.status,
    attempts: run.attempts,
    conflicts: run.conflicts,
    startedAt,
    completedAt: run.completedAt,
    durationMs: run.completedAt - startedAt,
  }
  if (run.status === 'completed') result.output = run.output
  if (run.error !== undefined) result.error = run.error
  return result
}

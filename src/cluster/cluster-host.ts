/**
 * A cluster host: the cluster implementation of the runtime's admission and result seam. Every entry
 * point has one BullMQ queue; an admission on any host adds a job to it, and every host's worker takes
 * jobs from it up to the entry point's local `maxConcurrent` and runs them on the host's own engine
 * (threads, state, records, timeouts as in one process). BullMQ carries what it is made for: priority,
 * deduplication for idempotency keys, attempts with backoff for `maxRetries`, global concurrency for
 * `cluster.maxConcurrent`, and stalled-job recovery: a job whose host died runs on another host.
 * Main thread only.
 *
 * @module
 */
import { randomUUID } from 'node:crypto'
import type { RedisOptions } from 'bullmq'
import { type Job, Queue, Worker } from 'bullmq'
import type { Redis } from 'ioredis'
import type { ResolvedClusterOptions, ResolvedRuntimeConfig } from '../config/index.js'
import {
  AgentPoolError,
  ClusterUnavailableError,
  NotRunningError,
  QueueFullError,
  UnknownEntryPointError,
} from '../errors.js'
import type { GoalProgress } from '../outcomes/index.js'
import { API_META } from '../protocol.js'
import {
  type AdmissionSource,
  type AdmitRequest,
  type ExecutionResult,
  type LocalRunner,
  newExecutionId,
  type ResultSource,
} from '../runtime/index.js'
import { type ClusterStats, clusterGoalProgress, clusterStatsOf, queueCounts } from './cluster-stats.js'
import { connectAdmission, redisOptionsOf } from './connection.js'
import { ClusterCounters, fieldsOf } from './counters.js'
import {
  type JobData,
  type JobResult,
  jobDataOf,
  jobOptionsOf,
  jobResultOf,
  keyPrefix,
  scheduledAtOf,
} from './job.js'
import { ResultWaiters } from './result-waiters.js'
import { type ClusterTimerStats, ClusterTimers } from './timers.js'

/** Events kept in each queue's event stream (BullMQ trims it to about this many). */
const EVENTS_KEPT = 100_000

/** The error a processor throws so BullMQ retries the job (with backoff, on any host). */
class AttemptFailedError extends Error {
  override readonly name = 'AttemptFailedError'
}

export class ClusterHost implements AdmissionSource, ResultSource {
  /** One queue per entry point, by entry point id. */
  private readonly queues = new Map<string, Queue<JobData, JobResult>>()
  private readonly workers: Worker<JobData, JobResult>[] = []
  /** Each entry point's worker connection, which its jobs' completions go on. */
  private readonly workerClients = new Map<string, Redis>()
  private waiters: ResultWaiters | undefined
  private readonly counters: ClusterCounters
  private readonly timers: ClusterTimers
  private accepting = false
  /** Set by a stop without drain: the jobs it cancels are left to stall and run on another host. */
  private handingOver = false
  /** The agent's key prefix (`<prefix>:<name>`). */
  private readonly prefix: string

  private constructor(
    private readonly config: ResolvedRuntimeConfig,
    private readonly options: ResolvedClusterOptions,
    private readonly connection: RedisOptions,
    private readonly client: Redis,
    private readonly local: LocalRunner,
  ) {
    const prefix = keyPrefix(options)
    this.prefix = prefix
    this.counters = new ClusterCounters(client, prefix, randomUUID())
    this.timers = new ClusterTimers(
      config.entryPoints,
      this.queues,
      client,
      `${prefix}:agentpool:paused-timers`,
    )
  }

  /**
   * Connects to Redis, opens the queues and their event readers, applies each entry point's cluster-wide
   * concurrency, and starts taking jobs.
   * @throws ClusterUnavailableError when Redis cannot be reached within `CONNECT_LIMIT_MS`; ConfigError for a bad `REDIS_URL`.
   */
  static async start(
    config: ResolvedRuntimeConfig,
    options: ResolvedClusterOptions,
    local: LocalRunner,
  ): Promise<ClusterHost> {
    const connection = redisOptionsOf(options)
    const client = await connectAdmission(connection)
    const host = new ClusterHost(config, options, connection, client, local)
    try {
      await host.open()
    } catch (err) {
      await host.stop({ drain: false })
      throw err instanceof AgentPoolError ? err : new ClusterUnavailableError('start()', err)
    }
    return host
  }

  private async open(): Promise<void> {
    const prefix = this.prefix
    for (const ep of this.config.entryPoints) {
      const queue = new Queue<JobData, JobResult>(ep.id, {
        connection: this.client,
        prefix,
        skipWaitingForReady: true,
        streams: { events: { maxLen: EVENTS_KEPT } },
      })
      queue.on('error', () => {})
      this.queues.set(ep.id, queue)
      if (ep.clusterMaxConcurrent === undefined) await queue.removeGlobalConcurrency()
      else await queue.setGlobalConcurrency(ep.clusterMaxConcurrent)
    }
    this.waiters = new ResultWaiters(this.queues, this.connection, prefix)
    for (const ep of this.config.entryPoints) {
      const worker = new Worker<JobData, JobResult>(ep.id, (job, token) => this.process(job, token), {
        connection: { ...this.connection, maxRetriesPerRequest: null },
        prefix,
        concurrency: ep.maxConcurrent,
        lockDuration: this.options.stalledMs,
        stalledInterval: this.options.stalledMs,
        maxStalledCount: 2,
        removeOnComplete: { count: this.options.keepResults },
        removeOnFail: { count: this.options.keepResults },
      })
      worker.on('error', () => {})
      this.workers.push(worker)
    }
    await Promise.all(this.workers.map((w) => w.waitUntilReady()))
    for (const w of this.workers) {
      this.workerClients.set(w.name, (await w.getBackend().client) as unknown as Redis)
    }
    await this.counters.start()
    await this.timers.start()
    this.accepting = true
  }

  /** Hosts alive, and per entry point the queue's counts and how the cluster's executions ended. */
  async stats(): Promise<ClusterStats> {
    return this.ask('cluster.stats()', async () => {
      const [read, counts] = await Promise.all([this.counters.read(), queueCounts(this.queues)])
      return clusterStatsOf(read, counts)
    })
  }

  /** Jobs per entry point queue: waiting (with prioritized), active, delayed. */
  async queueCounts(): Promise<Record<string, Record<string, number>>> {
    return this.ask('queueCounts()', () => queueCounts(this.queues))
  }

  /** Goal progress over every host's executions. */
  async goalProgress(): Promise<GoalProgress> {
    return this.ask('cluster.goalProgress()', async () =>
      clusterGoalProgress(this.config, (await this.counters.read()).counters),
    )
  }

  /** Stops a timer's ticks on every host. */
  pauseTimer(entryPointId: string): Promise<void> {
    return this.ask(`pauseTimer(${JSON.stringify(entryPointId)})`, () => this.timers.pause(entryPointId))
  }

  /** Restarts a paused timer on every host. */
  resumeTimer(entryPointId: string): Promise<void> {
    return this.ask(`resumeTimer(${JSON.stringify(entryPointId)})`, () => this.timers.resume(entryPointId))
  }

  /** Next tick and paused state of every timer, cluster-wide. */
  timerStats(): Promise<Record<string, ClusterTimerStats>> {
    return this.ask('timerStats()', () => this.timers.stats())
  }

  /** Runs a Redis query; a Redis failure becomes ClusterUnavailableError. */
  private async ask<T>(what: string, query: () => Promise<T>): Promise<T> {
    if (this.client.status !== 'ready') throw new ClusterUnavailableError(what)
    try {
      return await query()
    } catch (err) {
      if (err instanceof AgentPoolError) throw err
      throw new ClusterUnavailableError(what, err)
    }
  }

  /** Adds the admission's job to its entry point's queue; resolves with the job id once Redis has it. */
  async admit(r: AdmitRequest): Promise<string> {
    const queue = this.queues.get(r.entryPointId)
    if (queue === undefined) throw new UnknownEntryPointError(r.entryPointId, [...this.queues.keys()])
    if (!this.accepting) throw new NotRunningError(`trigger(${JSON.stringify(r.entryPointId)})`)
    const what = `trigger(${JSON.stringify(r.entryPointId)})`
    if (this.client.status !== 'ready') throw new ClusterUnavailableError(what)
    const ep = this.config.entryPoints.find((e) => e.id === r.entryPointId)!
    try {
      if (Number.isFinite(ep.maxQueue)) {
        // Approximate: other hosts may add jobs between this count and the add below.
        const waiting = await queue.getJobCountByTypes('waiting', 'prioritized')
        if (waiting >= ep.maxQueue) throw new QueueFullError(ep.id, ep.maxQueue)
      }
      const options = jobOptionsOf(newExecutionId(), r, ep, this.options, this.config.idempotency.ttlMs)
      const job = await queue.add(ep.id, jobDataOf(r), options)
      r.onAdmitted?.(job.id!)
      return job.id!
    } catch (err) {
      if (err instanceof AgentPoolError) throw err
      throw new ClusterUnavailableError(what, err)
    }
  }

  /** The execution's result, from whichever host ran it. */
  wait(executionId: string, entryPointId?: string): Promise<ExecutionResult | undefined> {
    return this.ask(`waitForExecution(${JSON.stringify(executionId)})`, () =>
      this.waiters!.wait(executionId, entryPointId),
    )
  }

  /**
   * Stops taking jobs. With drain, the jobs this host holds finish and their results reach Redis; without,
   * they are left to stall, and another host runs them once `stalledMs` has passed.
   */
  async stop(opts: { drain: boolean }): Promise<void> {
    this.accepting = false
    this.handingOver = !opts.drain
    await Promise.all(this.workers.map((w) => w.close(!opts.drain)))
    await this.counters.close()
    await this.waiters?.close()
    await Promise.all([...this.queues.values()].map((q) => q.close()))
    this.client.disconnect()
  }

  /** Runs one job on this host's engine; a failed attempt with attempts left goes back to BullMQ. */
  private async process(job: Job<JobData, JobResult>, _token?: string): Promise<JobResult> {
    const d = job.data
    const attempt = job.attemptsMade + 1
    let input = d.input
    const opts: AdmitRequest['opts'] = { meta: d.meta ?? API_META }
    if (d.meta?.trigger === 'timer') {
      // A scheduler's tick: its slot comes from the job, as one process's timers give it.
      const scheduledAt = scheduledAtOf(job)
      input = { scheduledAt }
      opts.meta = { trigger: 'timer', scheduledAt }
      if (attempt === 1) this.local.timerFired(job.queueName, job.id!)
    }
    if (d.correlationId !== undefined) opts.correlationId = d.correlationId
    if (d.priority !== undefined) opts.priority = d.priority
    if (d.timeoutMs !== undefined) opts.timeoutMs = d.timeoutMs
    const result = await this.local.run(
      { entryPointId: job.queueName, input, opts, depth: d.depth ?? 0, delegated: d.delegated === true },
      { id: job.id!, attempt },
    )
    if (result.status === 'cancelled' && this.handingOver) {
      // The host is going away: the job stalls and runs elsewhere rather than ending cancelled.
      return new Promise<never>(() => {})
    }
    if (result.status === 'failed' && attempt < (job.opts.attempts ?? 1)) {
      throw new AttemptFailedError(result.error?.message ?? 'the attempt failed')
    }
    // The job finishes only once its figures are on their way to the cluster counters, ahead of it.
    await this.counters.add(
      this.workerClients.get(job.queueName)!,
      `${this.prefix}:${job.queueName}:${job.id}`,
      fieldsOf(result, this.local.decisionsOf(result.streamId, result.executionId)),
    )
    return jobResultOf(result)
  }
}

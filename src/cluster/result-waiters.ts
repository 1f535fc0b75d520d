/**
 * Waiting from anywhere: a host resolves the results of executions that ran on any host. A `QueueEvents`
 * reader follows an entry point's event stream (it resumes where it left off after a reconnection); it is
 * started by the first wait on that entry point, so a host nobody waits on reads no events. Each waiter
 * is registered, and the reader ready, before the job is looked up: a job that finished before the waiter
 * came is found by the lookup, one that finishes after is found by the event.
 * Main thread only.
 *
 * @module
 */
import { type Job, type Queue, QueueEvents, type RedisOptions } from 'bullmq'
import { ErrorCode } from '../errors.js'
import type { ExecutionResult } from '../runtime/index.js'
import { executionResultOf, type JobData, type JobResult } from './job.js'

/** How often waiters that have waited a while look their job up (events can be trimmed away or missed). */
const RECHECK_MS = 2000

/** Settles a waiter: with the result, or undefined once its job is gone from Redis. */
type Settle = (result: ExecutionResult | undefined) => void

export class ResultWaiters {
  /** Started readers by entry point id (each resolves once the reader reads). */
  private readonly readers = new Map<string, Promise<QueueEvents>>()
  /** Waiters by job id; a job id is unique across the agent's queues (a random UUID). */
  private readonly waiting = new Map<string, { queue: Queue; since: number; settle: Settle[] }>()
  private readonly recheck: NodeJS.Timeout

  constructor(
    private readonly queues: ReadonlyMap<string, Queue>,
    private readonly connection: RedisOptions,
    private readonly prefix: string,
  ) {
    this.recheck = setInterval(() => void this.recheckOld(), RECHECK_MS)
    this.recheck.unref()
  }

  /** The entry point's event reader, started on first use. */
  private reader(name: string): Promise<QueueEvents> {
    let started = this.readers.get(name)
    if (started === undefined) {
      const reader = new QueueEvents(name, { connection: this.connection, prefix: this.prefix })
      reader.on('error', () => {})
      reader.on('completed', ({ jobId, returnvalue }) => {
        if (this.waiting.has(jobId)) {
          this.resolve(jobId, executionResultOf(jobId, name, returnvalue as JobResult))
        }
      })
      reader.on('failed', ({ jobId }) => void this.settleOrDrop(jobId))
      started = reader.waitUntilReady().then(() => reader)
      // A reader that could not start is started again by the next wait.
      started.catch(() => this.readers.delete(name))
      this.readers.set(name, started)
    }
    return started
  }

  /**
   * The job's result once it is final; undefined when no queue (or not `entryPointId`'s) has the job, or
   * when the job is removed from Redis before its result is read. Rejects only when Redis cannot be asked.
   */
  async wait(executionId: string, entryPointId?: string): Promise<ExecutionResult | undefined> {
    const queues = entryPointId === undefined ? [...this.queues.values()] : [this.queues.get(entryPointId)]
    for (const queue of queues) {
      if (queue === undefined) continue
      await this.reader(queue.name)
      const result = new Promise<ExecutionResult | undefined>((settle) =>
        this.register(executionId, queue, settle),
      )
      const found = await this.lookUp(executionId, queue)
      if (found) return result
      this.forget(executionId, queue)
    }
    return undefined
  }

  async close(): Promise<void> {
    clearInterval(this.recheck)
    const readers = await Promise.allSettled(this.readers.values())
    await Promise.all(readers.map((r) => (r.status === 'fulfilled' ? r.value.close() : undefined)))
  }

  private register(id: string, queue: Queue, settle: Settle): void {
    const w = this.waiting.get(id)
    if (w === undefined) this.waiting.set(id, { queue, since: Date.now(), settle: [settle] })
    else w.settle.push(settle)
  }

  private forget(id: string, queue: Queue): void {
    if (this.waiting.get(id)?.queue === queue) this.waiting.delete(id)
  }

  private resolve(id: string, result: ExecutionResult | undefined): void {
    const w = this.waiting.get(id)
    if (w === undefined) return
    this.waiting.delete(id)
    for (const settle of w.settle) settle(result)
  }

  /**
   * Looks the job up: settles its waiters when it is final. False when the queue does not have it.
   * A lookup that cannot reach Redis leaves the waiters waiting (the event or a recheck settles them).
   */
  private async lookUp(id: string, queue = this.waiting.get(id)?.queue): Promise<boolean> {
    if (queue === undefined) return true
    let job: Job<JobData, JobResult> | undefined
    try {
      job = await queue.getJob(id)
    } catch {
      return true
    }
    if (job === undefined) return false
    if (job.finishedOn !== undefined && job.finishedOn > 0) {
      const r = job.returnvalue
      this.resolve(id, r ? executionResultOf(id, job.queueName, r) : failedResult(job))
    }
    return true
  }

  /** Waiters older than {@link RECHECK_MS} look their job up again, a few at a time. */
  private async recheckOld(): Promise<void> {
    const before = Date.now() - RECHECK_MS
    const old: string[] = []
    for (const [id, w] of this.waiting) {
      if (w.since < before) old.push(id)
      if (old.length >= 200) break
    }
    await Promise.all(old.map((id) => this.settleOrDrop(id)))
  }

  /** Looks a waited-on job up: settles its waiters when it is final, and with undefined when it is gone. */
  private async settleOrDrop(id: string): Promise<void> {
    if (!(await this.lookUp(id))) this.resolve(id, undefined)
  }
}

/**
 * The result of a job BullMQ failed without a result from a host: it stalled more often than allowed
 * (its hosts kept dying) or its host could not report it.
 */
function failedResult(job: Job<JobData, JobResult>): ExecutionResult {
  const completedAt = job.finishedOn ?? Date.now()
  const startedAt = job.processedOn ?? completedAt
  return {
    executionId: job.id ?? '',
    streamId: job.queueName,
    correlationId: job.data.correlationId ?? job.id ?? '',
    status: 'failed',
    error: { code: ErrorCode.WORKER_CRASHED, message: job.failedReason || 'the job failed in the queue' },
    attempts: Math.max(1, job.attemptsMade),
    conflicts: 0,
    startedAt,
    completedAt,
    durationMs: completedAt - startedAt,
  }
}

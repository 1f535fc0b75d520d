/**
 * Admission: which stream an execution joins, whether its idempotency key already started one, and
 * whether its stream's queue has room. Main thread only; nothing here blocks.
 *
 * @module
 */
import type { ResolvedRuntimeConfig } from '../config/index.js'
import { NotRunningError, QueueFullError, UnknownEntryPointError } from '../errors.js'
import type { LogOp, UnfinishedRun } from '../protocol.js'
import { newExecutionId } from './execution-id.js'
import { type Execution, ExecutionStream, newExecution } from './execution-stream.js'
import { IdempotencyCache } from './idempotency-cache.js'
import type { RunAs } from './sources.js'
import type { TriggerOptions } from './types.js'

/** Receives what the run log keeps of the runtime's work (see `src/durability/`), in the order it happens. */
export type Journal = (op: LogOp) => void

export class Admission {
  readonly streams = new Map<string, ExecutionStream>()
  /** Streams by entry-point priority, highest first: the order dispatch visits them. */
  readonly streamOrder: ExecutionStream[]
  /** Whether new executions are accepted (between `attach` and `stop`). */
  accepting = false
  private readonly idempotency: IdempotencyCache
  private seq = 0

  constructor(
    config: ResolvedRuntimeConfig,
    private readonly journal: Journal | undefined,
  ) {
    for (const [i, ep] of config.entryPoints.entries()) this.streams.set(ep.id, new ExecutionStream(ep, i))
    this.streamOrder = [...this.streams.values()].sort(
      (a, b) => b.entryPoint.priority - a.entryPoint.priority,
    )
    this.idempotency = new IdempotencyCache(config.idempotency.ttlMs, config.idempotency.maxKeys)
  }

  /**
   * A new execution for `entryPointId`, counted as admitted by its stream; or, for an idempotency key
   * seen within its TTL, the id of the execution it started. With `runAs` (a cluster job, already admitted
   * and deduplicated by its queue) it takes the job's id and attempt, and neither the idempotency cache nor
   * `maxQueue` applies.
   * @throws UnknownEntryPointError, NotRunningError, QueueFullError (nothing is admitted then).
   */
  admit(
    entryPointId: string,
    input: unknown,
    opts: TriggerOptions,
    depth: number,
    delegated: boolean,
    runAs?: RunAs,
  ): Execution | string {
    const stream = this.streams.get(entryPointId)
    if (stream === undefined) throw new UnknownEntryPointError(entryPointId, [...this.streams.keys()])
    if (!this.accepting) throw new NotRunningError(`trigger(${JSON.stringify(entryPointId)})`)
    // Keys are per entry point: the same delivery id sent to two webhooks starts two executions.
    const key =
      opts.idempotencyKey === undefined || runAs !== undefined
        ? undefined
        : `${stream.id}\u0000${opts.idempotencyKey}`
    if (key !== undefined) {
      const first = this.idempotency.get(key)
      if (first !== undefined) return first
    }
    if (stream.full && runAs === undefined) {
      stream.rejected++
      throw new QueueFullError(stream.id, stream.entryPoint.maxQueue)
    }
    const e = newExecution(runAs?.id ?? newExecutionId(), stream, input, opts, this.seq++, depth, delegated)
    if (runAs !== undefined) {
      e.attempt = runAs.attempt
      e.maxRetries = 0
    }
    const expiresAt = key === undefined ? 0 : this.idempotency.set(key, e.id)
    stream.admitted++
    if (this.journal !== undefined) {
      this.journal({
        op: 'admit',
        id: e.id,
        entryPointId: stream.id,
        input,
        priority: e.priority,
        correlationId: e.correlationId,
        meta: e.meta,
        timeoutMs: e.timeoutMs,
        depth,
        admittedAt: e.admittedAt,
        ...(key === undefined ? {} : { idempotency: { key, expiresAt } }),
      })
    }
    return e
  }

  /**
   * An execution read back from the run log: queued again under its own id, as attempt `attempts + 1`,
   * with `ctx.meta.recovered` set. Undefined when its entry point is no longer configured.
   */
  readmit(run: UnfinishedRun): Execution | undefined {
    const stream = this.streams.get(run.entryPointId)
    if (stream === undefined) return undefined
    const opts: TriggerOptions = {
      correlationId: run.correlationId,
      priority: run.priority - stream.entryPoint.priority,
      timeoutMs: run.timeoutMs,
      meta: { ...run.meta, recovered: true },
    }
    const e = newExecution(run.id, stream, run.input, opts, this.seq++, run.depth)
    e.attempt = run.attempts + 1
    e.startedAt = run.startedAt
    stream.admitted++
    return e
  }

  /** Remembers an idempotency key read back from the run log. */
  restoreKey(key: string, executionId: string, expiresAt: number): void {
    this.idempotency.restore(key, executionId, expiresAt)
  }
}

/**
 * Public types of the runtime: trigger options, execution results and statistics.
 *
 * @module
 */

/** Options of {@link AgentRuntime.trigger} and {@link AgentRuntime.triggerAndWait}. */
export interface TriggerOptions {
  /**
   * A second trigger with the same key within `idempotency.ttlMs` returns the first execution's id and
   * starts nothing.
   */
  idempotencyKey?: string
  /** Ties related executions together (a webhook and its follow-ups). @default the execution id */
  correlationId?: string
  /** Added to the entry point's priority; higher starts first among queued executions. @default 0 */
  priority?: number
  /** Overrides the entry point's `timeoutMs` for this execution; 0 means none. */
  timeoutMs?: number
  /** Aborting it cancels the execution, queued or running. */
  signal?: AbortSignal
  /** Free-form facts about how the execution was triggered; the handler sees them as `ctx.meta`. */
  meta?: Readonly<Record<string, unknown>>
}

export type ExecutionStatus = 'completed' | 'failed' | 'cancelled' | 'timed_out'

/** How an execution ended. */
export interface ExecutionResult<Output = unknown> {
  executionId: string
  streamId: string
  correlationId: string
  status: ExecutionStatus
  /** The handler's return value, when `status` is `completed`. */
  output?: Output
  /** Why it did not complete: a stable `code` (`AGENTPOOL_*`), a message, and the handler's stack when there is one. */
  error?: { code: string; message: string; name?: string; stack?: string }
  /** Attempts that ran (1 + retries). */
  attempts: number
  /** Times a `serializable` execution re-ran from the start because its commit conflicted (0 otherwise). */
  conflicts: number
  /** Epoch ms when the first attempt was dispatched to a thread (or, if it never was, when it ended). */
  startedAt: number
  /** Epoch ms when the result became final. */
  completedAt: number
  /** `completedAt − startedAt`. */
  durationMs: number
}

/** Latency percentiles in milliseconds over a stream's recent executions (admission to end). */
export interface LatencyPercentiles {
  p50: number
  p95: number
  p99: number
}

export interface StreamStats {
  streamId: string
  running: number
  queued: number
  /** Executions accepted by `trigger` (retries of one execution count once). */
  admitted: number
  completed: number
  failed: number
  timedOut: number
  cancelled: number
  /** Triggers refused because the queue was full. */
  rejected: number
  /** Attempts re-run after a failure. */
  retried: number
  /** Re-runs of `serializable` executions whose commit conflicted. */
  conflicts: number
  maxConcurrent: number
  maxQueue: number
  latencyMs: LatencyPercentiles
}

export interface PoolStats {
  threads: number
  tasksPerThread: number
  /** Fraction of thread time spent running tasks, from Piscina. */
  utilization: number
  /** Pool messages in flight (each carries one or more executions). */
  messagesInFlight: number
  /** Threads replaced after dying or being terminated. */
  threadsReplaced: number
}

export interface RuntimeStats {
  running: boolean
  streams: Record<string, StreamStats>
  pool: PoolStats
}

/** Options of {@link AgentRuntime.stop}. */
export interface StopOptions {
  /**
   * true: refuse new triggers, let every admitted execution finish, deliver all their records, then stop.
   * false: cancel queued and running executions (they end `cancelled`), then stop.
   * @default true
   */
  drain?: boolean
}

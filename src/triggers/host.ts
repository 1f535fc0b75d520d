/**
 * What the triggers need from the runtime: a way to start executions, the event bus, and the figures
 * `/metrics` and the timers read. The runtime passes itself in through this narrow interface, so the
 * triggers never reach into its internals (and tests can drive them with a small host of their own).
 *
 * @module
 */
import type { EventBus } from '../events/index.js'

/** Options of {@link TriggerHost.trigger}. */
export interface HostTriggerOptions {
  idempotencyKey?: string
  correlationId?: string
  priority?: number
  /** Handed to the handler as `ctx.meta`. */
  meta?: Record<string, unknown>
  /** Event-cascade depth of the new execution: 0 for outside triggers. */
  depth?: number
  /**
   * Called with the execution's id as soon as it is admitted (or found by its idempotency key), before it
   * can start: events published here come before its `execution_started`.
   */
  onAdmitted?: (executionId: string) => void
}

/** The per-stream figures the triggers read (a structural subset of the runtime's `StreamStats`). */
export interface HostStreamStats {
  running: number
  queued: number
  completed: number
  failed: number
  timedOut: number
  cancelled: number
  rejected: number
  latencyMs: { p50: number; p95: number; p99: number }
  maxConcurrent: number
  maxQueue: number
}

/** The runtime figures the triggers read (a structural subset of the runtime's `RuntimeStats`). */
export interface HostStats {
  streams: Record<string, HostStreamStats>
  pool: { threads: number; utilization: number }
}

/** The state figures `/metrics` reports (a structural subset of `SharedBufferManager.stats()`). */
export interface HostStateStats {
  keys: number
  bytesUsed: number
  capacity: number
  conflicts: number
}

/** The runtime as the triggers see it. */
export interface TriggerHost {
  /**
   * Admits one execution and resolves with its id (the first execution's id for a repeated idempotency
   * key). Rejects with `QueueFullError`, `NotRunningError` … when nothing was admitted.
   */
  trigger(entryPointId: string, input: unknown, opts?: HostTriggerOptions): Promise<string>
  readonly events: EventBus
  stats(): HostStats
  stateStats(): HostStateStats
  /**
   * Event-cascade depth of an execution (0 if unknown). Must still answer for an execution whose events
   * are being delivered, including its own `execution_completed` / `execution_failed`.
   */
  depthOf(executionId: string): number
  /**
   * Cluster mode: jobs per entry point queue and state (`waiting`, `active`, `delayed`), read from Redis
   * when `/metrics` is scraped.
   */
  clusterQueues?(): Promise<Record<string, Record<string, number>>>
}

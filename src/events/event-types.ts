/**
 * The event vocabulary: built-in event types and their payloads as one typed map, plus the
 * {@link AgentEvent} envelope every event travels in. Handlers may emit any other type (`ctx.emit`);
 * its payload is `unknown` to subscribers.
 *
 * @module
 */
import type { SerializedError } from '../errors.js'

/** An error as it appears in an event payload. */
export interface ErrorSummary {
  code: string
  message: string
}

/** Per-criterion summary carried by `goal_progress`. */
export interface CriterionProgressSummary {
  met: boolean
  progress: number
}

/** Payload of every built-in event type, by type. */
export interface BuiltInEvents {
  /** An attempt of an execution started on a worker. */
  execution_started: { entryPointId: string; attempt: number }
  /**
   * An execution finished successfully. `output` is the handler's return value when it encodes in at most
   * 16 KiB of msgpack; a larger one is left out and `outputBytes` says how large it was.
   */
  execution_completed: { attempt: number; durationMs: number; output?: unknown; outputBytes?: number }
  /** An execution finished without success (failed, timed out or cancelled). */
  execution_failed: {
    attempt: number
    status: 'failed' | 'timed_out' | 'cancelled'
    error: ErrorSummary
    durationMs: number
  }
  /**
   * An execution admitted before a restart and unfinished then was read back from the run log and queued
   * again, ahead of new work; `attempt` is the attempt it runs as now.
   */
  execution_recovered: { entryPointId: string; attempt: number }
  /** A failed attempt is being retried; `attempt` is the attempt that failed. */
  execution_retried: { attempt: number; error: ErrorSummary }
  /** A stream or global key was committed. */
  state_changed: {
    key: string
    scope: 'execution' | 'stream' | 'global'
    /** `undefined` when absent, or when left out for size (`truncated`). */
    old: unknown
    /** `undefined` when deleted, or when left out for size (`truncated`). */
    new: unknown
    attempt: number
    /** A side whose stored form is over 16 KiB was left out; `oldBytes` / `newBytes` say how big each was. */
    truncated?: true
    /** Bytes the old value took in the store (a number: 8; absent: 0). */
    oldBytes?: number
    /** Bytes the new value takes in the store (a number: 8; deleted: 0). */
    newBytes?: number
  }
  /** A synchronized write was refused because the key changed since the execution read it. */
  state_conflict: {
    key: string
    scope: 'stream' | 'global'
    attempt: number
    /** `serializable`: the attempt applied nothing and re-runs (or, past `maxConflictRetries`, fails). */
    level: 'synchronized' | 'serializable'
  }
  /** The goal's progress or recommendation changed (see `OutcomeAggregator` options for the step). */
  goal_progress: {
    goalId: string
    overallProgress: number
    recommendation: 'continue' | 'adjust' | 'complete'
    criteria: Record<string, CriterionProgressSummary>
  }
  /** Every criterion is met and no hard constraint is violated (published once per achievement). */
  goal_achieved: { goalId: string; overallProgress: number }
  /** A handler reported a broken constraint. Constraints the goal does not name count as `soft`. */
  constraint_violation: {
    constraintId: string
    kind: 'hard' | 'soft'
    /** False when the goal has no constraint with this id. */
    known: boolean
    details: unknown
    attempt: number
  }
  /** A handler reported a problem (`ctx.reportProblem`). */
  problem_reported: {
    severity: 'low' | 'medium' | 'high' | 'critical'
    description: string
    decisionId?: string
    suggestedFix?: string
    attempt: number
  }
  /** A stream was opened (runtime start). */
  stream_started: { entryPointId: string }
  /** A stream was closed (runtime stop). */
  stream_stopped: { entryPointId: string }
  /** The webhook server accepted a delivery. */
  webhook_received: { path: string; method: string }
  /** A trigger (webhook, timer, event, api, manual, delegation) started an execution. */
  trigger_fired: { entryPointId: string; triggerType: string }
  /**
   * A subscriber threw or rejected while handling `event`. Never published for a failure while
   * handling a `subscriber_error` itself (that one becomes a process warning), so it cannot recurse.
   */
  subscriber_error: { subscriptionId: string; event: { id: string; type: string }; error: SerializedError }
}

/** A built-in event type. */
export type BuiltInEventType = keyof BuiltInEvents

/** Any event type: a built-in one, or a custom type a handler emits. */
export type EventType = BuiltInEventType | (string & {})

/** The payload type of event type `T`: typed for built-ins, `unknown` for custom types. */
export type EventData<T extends string> = T extends BuiltInEventType ? BuiltInEvents[T] : unknown

/** The envelope of one event of type `T`. */
export interface AgentEventOf<T extends string> {
  /** Unique within the bus, increasing in publication order. */
  id: string
  type: T
  /** The stream the event belongs to (for goal events, the stream whose record caused it). */
  streamId: string
  executionId?: string
  correlationId?: string
  data: EventData<T>
  /** Milliseconds since the epoch. */
  timestamp: number
}

/**
 * An event. With a union of types it is a discriminated union: checking `event.type` narrows `data`.
 */
export type AgentEvent<T extends string = string> = T extends unknown ? AgentEventOf<T> : never

/** What `publish` takes: the envelope without `id` (assigned) and with an optional `timestamp`. */
export type EventInput<T extends string = string> = T extends unknown
  ? Omit<AgentEventOf<T>, 'id' | 'timestamp'> & { timestamp?: number }
  : never

/** Which events a subscription, `history` or `waitFor` selects. Every given field must match. */
export interface EventFilter<T extends string = EventType> {
  /** Only these types. @default every type */
  types?: readonly T[]
  /** Only events of this stream. */
  streamId?: string
  /** Only events of this execution. */
  executionId?: string
  /** Only events carrying this correlation id (one trigger's chain of executions). */
  correlationId?: string
}

/** A subscriber. Its return value is ignored, except that a returned promise that rejects is reported like a throw. */
export type EventHandler<T extends string = string> = (event: AgentEvent<T>) => unknown

/** Every built-in event type, for code that must tell them from custom ones at run time. */
export const BUILT_IN_EVENT_TYPES: readonly BuiltInEventType[] = Object.keys({
  execution_started: true,
  execution_completed: true,
  execution_failed: true,
  execution_retried: true,
  execution_recovered: true,
  state_changed: true,
  state_conflict: true,
  goal_progress: true,
  goal_achieved: true,
  constraint_violation: true,
  problem_reported: true,
  stream_started: true,
  stream_stopped: true,
  webhook_received: true,
  trigger_fired: true,
  subscriber_error: true,
} satisfies Record<BuiltInEventType, true>) as BuiltInEventType[]

/**
 * The built-in event types as a frozen object of their string values (`EventType.EXECUTION_COMPLETED ===
 * 'execution_completed'`), beside the {@link EventType} string type.
 */
export const EventType = Object.freeze(
  Object.fromEntries(BUILT_IN_EVENT_TYPES.map((t) => [t.toUpperCase(), t])),
) as { readonly [K in BuiltInEventType as Uppercase<K>]: K }

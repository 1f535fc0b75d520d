/**
 * The wire protocol: every message that crosses a thread boundary is defined here, and both sides import
 * it. Three paths exist:
 *
 * 1. **Task payloads** (main → worker, through Piscina `run`): a {@link BatchTask} carrying one or more
 *    executions. Many executions travel in one pool message when queues are deep, which is how the
 *    per-execution dispatch cost is hidden; each still has its own result, timeout and error.
 * 2. **Records** (worker → main, through the per-thread SharedArrayBuffer ring of
 *    `channel/`): msgpack-encoded {@link WireRecord}s batched into frames. An execution's
 *    end is itself a record ({@link EndRecord}), written after all of that execution's other records, so
 *    when the main thread consumes the end it has consumed everything before it — and what a thread wrote
 *    before it died is still in shared memory to be read.
 * 3. **Control** (main → every worker, through a BroadcastChannel named by {@link controlChannelName}):
 *    {@link ControlMessage}s such as aborting one execution's `ctx.signal`.
 *
 * @module
 */
import type { SerializedError } from './errors.js'

/**
 * One execution as it travels to a worker. Everything the entry point fixes (stream id, handler module,
 * isolation) is sent once per thread in {@link PoolEntryPoint}s, and defaults are left out, so a deep
 * queue's pool messages stay small to copy.
 */
export interface ExecutionTask {
  executionId: string
  /** Index into the {@link PoolEntryPoint}s every thread received at start. */
  entryPoint: number
  attempt: number
  input: unknown
  /** Absent when it equals `executionId`. */
  correlationId?: string
  /** Absent when it is {@link API_META}. */
  meta?: Record<string, unknown>
  /**
   * The attempt's state lease (`SharedBufferManager.openLease`): its `ctx.state` commits nothing once the
   * main thread ends it. Absent only for tasks sent without a runtime (tests).
   */
  lease?: { slot: number; gen: number }
}

/** What a thread needs to know of each entry point, sent once in `workerData`. */
export interface PoolEntryPoint {
  id: string
  /** Absolute path of the handler module. */
  handler: string
  isolation: {
    stream: 'isolated' | 'shared' | 'synchronized' | 'serializable'
    global: 'isolated' | 'shared' | 'synchronized' | 'serializable'
  }
  /** Re-runs after a conflicting `serializable` commit before the execution fails. */
  maxConflictRetries: number
}

/** `ctx.meta` of an execution started through the runtime's API. */
export const API_META: Readonly<Record<string, unknown>> = Object.freeze({ trigger: 'api' })

/** `ctx.meta` of an execution of a `manual` entry point started through the runtime's API. */
export const MANUAL_META: Readonly<Record<string, unknown>> = Object.freeze({ trigger: 'manual' })

/** The Piscina task payload: one pool message, one or more executions. */
export interface BatchTask {
  executions: ExecutionTask[]
  /** Where the worker records which thread took this message (-1: nowhere); see `WorkerPool.threadOf`. */
  slot?: number
  /** Handler modules to load ahead of use (sent once per thread at start, with no executions). */
  warmup?: string[]
}

/**
 * What the Piscina task resolves with. Outcomes travel as {@link EndRecord}s through the record ring; an
 * output too large for the ring comes back here instead, keyed by execution id.
 */
export interface BatchResult {
  /**
   * The thread's busy time (its event loop's active time, µs) since its previous reply, and the
   * executions that ended on it meanwhile: the dispatcher sizes messages from their ratio.
   */
  busyUs?: number
  ended?: number
  largeOutputs?: Record<string, unknown>
  /** Answer to a warm-up: each handler module that did not load, with why (the error's message). */
  handlerFailures?: Record<string, string>
}

/** Record kinds. Every record carries the execution it belongs to and the attempt that made it. */
export const RecordKind = {
  END: 'end',
  STATE_CHANGE: 'state_change',
  STATE_CONFLICT: 'state_conflict',
} as const

interface RecordBase {
  executionId: string
  streamId: string
  attempt: number
}

/** The last record of one attempt: the handler returned or threw. */
export interface EndRecord extends RecordBase {
  k: 'end'
  ok: boolean
  /** The handler's return value (absent when `largeOutput` is set or the handler failed). */
  output?: unknown
  /** True when the output was too large for the ring and comes back in {@link BatchResult.largeOutputs}. */
  largeOutput?: boolean
  error?: SerializedError
  startedAt: number
  completedAt: number
  /** Re-runs after a conflicting `serializable` commit (absent: none). */
  conflicts?: number
}

/** A committed change to a stream or global key (execution-scope changes are not published). */
export interface StateChangeRecord extends RecordBase {
  k: 'state_change'
  key: string
  scope: 'execution' | 'stream' | 'global'
  old: unknown
  new: unknown
  timestamp: number
  /** The commit's position in the global commit order: orders changes of one key that arrive out of order. */
  version?: number
  /** A side over 16 KiB stored was left out (`old` / `new` undefined); the sizes say how big each was. */
  truncated?: boolean
  oldBytes?: number
  newBytes?: number
}

/**
 * A `synchronized` write was refused because the key changed since this execution read it, or a
 * `serializable` attempt conflicted (its other records are dropped and it runs again).
 */
export interface StateConflictRecord extends RecordBase {
  k: 'state_conflict'
  key: string
  scope: 'stream' | 'global'
  timestamp: number
  /** Absent for `synchronized` (older writers did not send it). */
  level?: 'synchronized' | 'serializable'
}

/** Every record kind. The outcomes section below adds decisions, outcomes, problems, violations, events. */
export type WireRecord = EndRecord | StateChangeRecord | StateConflictRecord | OutcomeWireRecord

/** Main → workers control messages. */
export type ControlMessage = {
  kind: 'abort'
  executionId: string
  reason: 'timeout' | 'cancelled' | 'stopping'
}

/** Name of the BroadcastChannel a runtime uses for {@link ControlMessage}s. */
export function controlChannelName(runtimeId: string): string {
  return `agentpool:${runtimeId}:control`
}

// ---------------------------------------------------------------------------------------------------------
// Outcomes section: decision / outcome / problem / violation / event records (owned by the outcomes module).
// ---------------------------------------------------------------------------------------------------------

/** Record kinds written by `ctx.decide`, `ctx.recordOutcome`, `ctx.reportProblem`, `ctx.violateConstraint`, `ctx.emit`. */
export const OutcomeRecordKind = {
  DECISION: 'decision',
  OUTCOME: 'outcome',
  PROBLEM: 'problem',
  VIOLATION: 'violation',
  EVENT: 'event',
} as const

/** How bad a reported problem is. */
export type ProblemSeverity = 'low' | 'medium' | 'high' | 'critical'

/** One option a decision chose among. */
export interface DecisionOption {
  id: string
  description?: string
  [extra: string]: unknown
}

/** `ctx.decide`: a choice made by a handler, counted toward the goal criteria it names. */
export interface DecisionRecord extends RecordBase {
  k: 'decision'
  /**
   * 0-based index of this decision within its attempt. The decision's id, `${executionId}:${attempt}:${seq}`
   * (see {@link decisionId}), is not sent: both sides derive it.
   */
  seq: number
  correlationId: string
  intent: string
  options: DecisionOption[]
  chosen: string
  reasoning: string
  criteria: string[]
  context?: unknown
  timestamp: number
}

/** The id of decision `seq` of an execution attempt, unique across the runtime. */
export function decisionId(executionId: string, attempt: number, seq: number): string {
  return `${executionId}:${attempt}:${seq}`
}

/**
 * `ctx.recordOutcome`: the result of a decision. An outcome of a decision of the same attempt names it by
 * `decisionSeq` (its id is `${executionId}:${attempt}:${decisionSeq}`, nothing to parse on the main
 * thread) and carries its criteria; an outcome of another attempt's decision names it by `decisionId`.
 * Exactly one of the two is set.
 */
export type OutcomeRecord = OwnOutcomeRecord | OtherOutcomeRecord

interface OutcomeRecordBase extends RecordBase {
  k: 'outcome'
  success: boolean
  result?: unknown
  error?: string
  summary?: string
  tokensUsed?: number
  latencyMs?: number
  timestamp: number
}

/** An outcome of a decision the same attempt made. */
export interface OwnOutcomeRecord extends OutcomeRecordBase {
  decisionSeq: number
  decisionId?: undefined
  /**
   * The criteria of the decision, copied by the worker, so the aggregator counts the outcome exactly even
   * if it no longer retains the decision.
   */
  criteria: string[]
}

/** An outcome of a decision by id (another execution's, or an earlier attempt's). */
export interface OtherOutcomeRecord extends OutcomeRecordBase {
  decisionId: string
  decisionSeq?: undefined
  criteria?: undefined
}

/** `ctx.reportProblem`. */
export interface ProblemRecord extends RecordBase {
  k: 'problem'
  severity: ProblemSeverity
  description: string
  decisionId?: string
  suggestedFix?: string
  timestamp: number
}

/** `ctx.violateConstraint`: a goal constraint was broken. */
export interface ViolationRecord extends RecordBase {
  k: 'violation'
  constraintId: string
  details: unknown
  timestamp: number
}

/** `ctx.emit`: a custom event for the main-thread event bus. */
export interface EventRecord extends RecordBase {
  k: 'event'
  correlationId: string
  type: string
  data: unknown
  timestamp: number
}

/** Every record the outcomes module defines. */
export type OutcomeWireRecord = DecisionRecord | OutcomeRecord | ProblemRecord | ViolationRecord | EventRecord

// ---------------------------------------------------------------------------------------------------------
// Delegation section: `ctx.trigger` calls, worker → main through comlink (owned by runtime/delegation.ts).
// ---------------------------------------------------------------------------------------------------------

/**
 * Names of the two BroadcastChannels that carry delegation calls of one runtime: comlink requests go
 * worker → main on `requests`, answers main → worker on `replies` (every worker hears every answer and
 * keeps the ones whose comlink id it is waiting for).
 */
export function delegationChannelNames(runtimeId: string): { requests: string; replies: string } {
  return { requests: `agentpool:${runtimeId}:delegate:req`, replies: `agentpool:${runtimeId}:delegate:res` }
}

/** What the main side answers a delegation with: the result, or the error to rethrow in the worker. */
export type DelegationReply<Result> = { ok: true; result: Result } | { ok: false; error: SerializedError }

// ---------------------------------------------------------------------------------------------------------
// Durability section: main thread ↔ the run log's writer thread (owned by src/durability/).
// ---------------------------------------------------------------------------------------------------------

/** An admission as the run log keeps it: everything needed to run the execution again after a restart. */
export interface AdmitOp {
  op: 'admit'
  id: string
  entryPointId: string
  input: unknown
  /** The priority the execution was admitted with (entry point's plus the trigger's). */
  priority: number
  correlationId: string
  meta: Readonly<Record<string, unknown>>
  timeoutMs: number
  depth: number
  admittedAt: number
  /** Present with an idempotency key: the key (entry point id, NUL, key) and when it expires. */
  idempotency?: { key: string; expiresAt: number }
  /** Folded in when the execution started (and `end` when it ended) before this admission was sent. */
  start?: StartOp
  end?: EndOp
}

/** An attempt was sent to a pool thread. */
export interface StartOp {
  op: 'start'
  id: string
  attempt: number
  startedAt: number
}

/** An execution's final result. */
export interface EndOp {
  op: 'end'
  id: string
  status: 'completed' | 'failed' | 'cancelled' | 'timed_out'
  attempts: number
  /** State conflicts its attempts ran into (absent: none). */
  conflicts?: number
  output?: unknown
  error?: { code: string; message: string; name?: string; stack?: string }
  startedAt: number
  completedAt: number
}

/** A committed stream or global change; `boot` and `version` order changes of one key (commit order). */
export interface StateOp {
  op: 'state'
  scope: 'stream' | 'global'
  /** The stream of a stream-scope key; '' for global keys. */
  streamId: string
  key: string
  value: unknown
  deleted: boolean
  version: number
}

/** A decision, outcome, problem or violation record, replayed into the aggregator on restart. */
export interface RecordOp {
  op: 'record'
  executionId: string
  record: unknown
}

/** A timer entry point fired. */
export interface TimerOp {
  op: 'timer'
  entryPointId: string
  /** The slot it fired for (its `scheduledAt`, epoch ms): a restart carries the schedule on from it. */
  firedAt: number
}

export type LogOp = AdmitOp | StartOp | EndOp | StateOp | RecordOp | TimerOp

/** One admitted execution that had not ended when the log was last written. */
export interface UnfinishedRun {
  id: string
  entryPointId: string
  input: unknown
  priority: number
  correlationId: string
  meta: Record<string, unknown>
  timeoutMs: number
  depth: number
  admittedAt: number
  /** Attempts started before the restart (0 if it never started). */
  attempts: number
  startedAt: number
}

/** What `start()` restores from the log. */
export interface Recovery {
  state: { scope: 'stream' | 'global'; streamId: string; key: string; value: unknown }[]
  idempotency: { key: string; executionId: string; expiresAt: number }[]
  unfinished: UnfinishedRun[]
  /** The aggregator's latest snapshot, if the log has one (`AggregatorSnapshot`). */
  snapshot?: unknown
  /** Aggregated records made after the snapshot (all, without one), in the order they were consumed. */
  records: unknown[]
  timers: Record<string, number>
}

/** A run as the log shows it (`agentpool runs`, `waitForExecution` after a restart). */
export interface RunRow {
  id: string
  entryPointId: string
  status: 'queued' | 'running' | 'completed' | 'failed' | 'cancelled' | 'timed_out'
  attempts: number
  /** State conflicts its attempts ran into. */
  conflicts: number
  correlationId: string
  input: unknown
  meta: Record<string, unknown>
  output?: unknown
  error?: { code: string; message: string; name?: string; stack?: string }
  admittedAt: number
  startedAt: number | null
  completedAt: number | null
}

/** Main thread → writer. */
export type WriterRequest =
  /** `bytes`: the batch's operations encoded by `src/durability/codec.ts` (`encodeBatch`), transferred. */
  | { kind: 'ops'; batch: number; bytes: Uint8Array }
  | { kind: 'recover'; request: number }
  | { kind: 'lookup'; request: number; executionId: string }
  | { kind: 'close'; request: number }

/** Writer → main thread. */
export type WriterReply =
  | { kind: 'ready' }
  | { kind: 'open_failed'; problem: string; error: SerializedError }
  /** `bytes`: the batch's buffer, handed back (transferred) for the next batch to be written into. */
  | { kind: 'committed'; batch: number; bytes: ArrayBuffer }
  | { kind: 'write_failed'; batch: number; problem: string; error: SerializedError }
  | { kind: 'recovered'; request: number; recovery: Recovery }
  | { kind: 'found'; request: number; run: RunRow | undefined }
  | { kind: 'closed'; request: number }

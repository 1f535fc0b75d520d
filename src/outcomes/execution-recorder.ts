/**
 * Worker side of outcomes: the `ctx.decide`, `ctx.recordOutcome`, `ctx.reportProblem`,
 * `ctx.violateConstraint` and `ctx.emit` of one execution attempt. Each call validates its arguments,
 * builds one wire record and pushes it to the thread's record sink, which encodes it at once: a record
 * msgpack cannot carry throws `RecordInvalidError` in the handler, at the call that made it, and nothing
 * of it is sent.
 *
 * @module
 */

import { describeValue, InvalidArgumentError, RecordInvalidError } from '../errors.js'
import { BUILT_IN_EVENT_TYPES } from '../events/index.js'
import {
  type DecisionOption,
  type DecisionRecord,
  decisionId,
  type OutcomeRecord,
  type ProblemRecord,
  type ProblemSeverity,
  type WireRecord,
} from '../protocol.js'
import type { DecisionInput, OutcomeInput, ProblemOptions } from './types.js'

/** Where records go: the thread's `RecordWriter` (or anything that encodes at `push`). */
export interface RecordSink {
  /** Encodes and buffers `record`; throws `RecordInvalidError` if it cannot be encoded. */
  push(record: WireRecord): void
}

/** Which execution attempt the recorder writes for. */
export interface ExecutionIds {
  executionId: string
  streamId: string
  entryPointId: string
  correlationId: string
  attempt: number
}

/** The recording half of `ctx`. Methods use `this`: call them on the recorder (`ctx` binds its own). Worker thread only. */
export interface ExecutionRecorder {
  /**
   * Records a decision.
   * @returns its id, unique across the runtime, for `recordOutcome` and `reportProblem`.
   */
  decide(decision: DecisionInput): string
  /**
   * Records the outcome of a decision: one of this attempt's, or an earlier one's by id. A second outcome
   * for the same decision of this attempt is refused.
   */
  recordOutcome(decisionId: string, outcome: OutcomeInput): void
  /** Reports a problem; published as a `problem_reported` event and counted by the aggregator. */
  reportProblem(severity: ProblemSeverity, description: string, options?: ProblemOptions): void
  /** Reports that goal constraint `constraintId` was broken. */
  violateConstraint(constraintId: string, details?: unknown): void
  /** Publishes a custom event (not a built-in type) on the main thread's bus. */
  emit(type: string, data?: unknown): void
  /** Ends recording: later calls throw (records after an attempt's end would belong to no one). */
  close(): void
}

/** Marks a decision of this attempt that already has its outcome. */
const DECIDED = 0

const SEVERITIES: ReadonlySet<string> = new Set(['low', 'medium', 'high', 'critical'])
const RESERVED_TYPES: ReadonlySet<string> = new Set(BUILT_IN_EVENT_TYPES)

/** Creates the recorder of one execution attempt. */
export function createExecutionRecorder(sink: RecordSink, ids: ExecutionIds): ExecutionRecorder {
  return new Recorder(sink, ids)
}

/**
 * One attempt's recorder. A plain class on purpose: it is made for every execution that records, so it
 * allocates no closures and no map — an attempt's decisions are found by their sequence number, which is
 * the last part of their id.
 */
class Recorder implements ExecutionRecorder {
  private readonly executionId: string
  private readonly streamId: string
  private readonly attempt: number
  private readonly correlationId: string
  /** Decision `seq`'s criteria (copied onto its outcome), by `seq`; {@link DECIDED} once it has an outcome. */
  private decided: (string[] | typeof DECIDED)[] | undefined
  /** The id prefix of this attempt's decisions, `${executionId}:${attempt}:`, made when first needed. */
  private idPrefix: string | undefined
  /** The id `decide` returned last (an outcome usually names it, as the very same string). */
  private lastId: string | undefined
  private seq = 0
  private closed = false

  constructor(
    private readonly sink: RecordSink,
    ids: ExecutionIds,
  ) {
    this.executionId = ids.executionId
    this.streamId = ids.streamId
    this.attempt = ids.attempt
    this.correlationId = ids.correlationId
  }

  decide(decision: DecisionInput): string {
    const d = checkDecision(decision)
    const seq = this.seq
    const record = decisionRecord(this.executionId, this.streamId, this.attempt, seq, this.correlationId, d)
    this.send('decide', record)
    this.seq++
    if (this.decided === undefined) this.decided = [d.criteria]
    else this.decided.push(d.criteria)
    this.lastId = decisionId(this.executionId, this.attempt, seq)
    return this.lastId
  }

  recordOutcome(decisionId: string, outcome: OutcomeInput): void {
    requireString('recordOutcome', 'decisionId', decisionId)
    const own = this.ownDecision(decisionId)
    if (own >= 0 && this.decided![own] === DECIDED) {
      throw new InvalidArgumentError(`ctx.recordOutcome: decision ${decisionId} already has an outcome`, {
        decisionId,
      })
    }
    const o = checkOutcome(outcome)
    const record: OutcomeRecord =
      own >= 0
        ? {
            k: 'outcome',
            executionId: this.executionId,
            streamId: this.streamId,
            attempt: this.attempt,
            decisionSeq: own,
            criteria: this.decided![own] as string[],
            success: o.success,
            timestamp: Date.now(),
          }
        : {
            k: 'outcome',
            executionId: this.executionId,
            streamId: this.streamId,
            attempt: this.attempt,
            decisionId,
            success: o.success,
            timestamp: Date.now(),
          }
    copyOutcomeFields(record, o)
    this.send('recordOutcome', record)
    if (own >= 0) this.decided![own] = DECIDED
  }

  reportProblem(severity: ProblemSeverity, description: string, options: ProblemOptions = {}): void {
    if (!SEVERITIES.has(severity)) {
      throw new InvalidArgumentError(
        `ctx.reportProblem: severity must be 'low', 'medium', 'high' or 'critical' (got ${describeValue(severity)})`,
        { severity },
      )
    }
    requireString('reportProblem', 'description', description)
    const record: ProblemRecord = {
      k: 'problem',
      executionId: this.executionId,
      streamId: this.streamId,
      attempt: this.attempt,
      severity,
      description,
      timestamp: Date.now(),
    }
    if (options.decisionId !== undefined)
      record.decisionId = requireString('reportProblem', 'options.decisionId', options.decisionId)
    if (options.suggestedFix !== undefined) {
      record.suggestedFix = requireString('reportProblem', 'options.suggestedFix', options.suggestedFix)
    }
    this.send('reportProblem', record)
  }

  violateConstraint(constraintId: string, details?: unknown): void {
    requireString('violateConstraint', 'constraintId', constraintId)
    this.send('violateConstraint', {
      k: 'violation',
      executionId: this.executionId,
      streamId: this.streamId,
      attempt: this.attempt,
      constraintId,
      details,
      timestamp: Date.now(),
    })
  }

  emit(type: string, data?: unknown): void {
    requireString('emit', 'type', type)
    if (RESERVED_TYPES.has(type)) {
      throw new InvalidArgumentError(
        `ctx.emit: ${JSON.stringify(type)} is a built-in event type the runtime publishes; pick another name`,
        { type },
      )
    }
    this.send('emit', {
      k: 'event',
      executionId: this.executionId,
      streamId: this.streamId,
      attempt: this.attempt,
      correlationId: this.correlationId,
      type,
      data,
      timestamp: Date.now(),
    })
  }

  close(): void {
    this.closed = true
  }

  /** The `seq` of this attempt's decision `id`, or −1 when the id is not one of this attempt's. */
  private ownDecision(id: string): number {
    if (id === this.lastId) return this.seq - 1
    if (this.seq === 0) return -1
    this.idPrefix ??= decisionId(this.executionId, this.attempt, 0).slice(0, -1)
    const prefix = this.idPrefix
    if (prefix === undefined || id.length <= prefix.length || !id.startsWith(prefix)) return -1
    let seq = 0
    for (let i = prefix.length; i < id.length; i++) {
      const digit = id.charCodeAt(i) - 48
      if (digit < 0 || digit > 9 || (seq === 0 && i > prefix.length)) return -1
      seq = seq * 10 + digit
    }
    return seq < this.seq ? seq : -1
  }

  private send(call: string, record: WireRecord): void {
    if (this.closed) {
      throw new InvalidArgumentError(
        `ctx.${call} was called after execution ${this.executionId} (attempt ${this.attempt}) ended; record before the handler returns`,
        { call, executionId: this.executionId },
      )
    }
    try {
      this.sink.push(record)
    } catch (err) {
      if (err instanceof RecordInvalidError) {
        throw new RecordInvalidError(`ctx.${call}: ${err.message}`, { ...err.details, call })
      }
      throw err
    }
  }
}

function requireString(call: string, field: string, value: unknown): string {
  if (typeof value !== 'string' || value === '') {
    throw new InvalidArgumentError(
      `ctx.${call}: ${field} must be a non-empty string (got ${describeValue(value)})`,
      { field, value },
    )
  }
  return value
}

/** A decision whose fields {@link checkDecision} checked, `criteria` defaulted. */
export type CheckedDecision = Required<Omit<DecisionInput, 'context'>> & { context?: unknown }

export function checkDecision(d: DecisionInput): CheckedDecision {
  if (d === null || typeof d !== 'object') {
    throw new InvalidArgumentError(
      `ctx.decide takes { intent, options, chosen, reasoning, criteria? } (got ${describeValue(d)})`,
    )
  }
  requireString('decide', 'intent', d.intent)
  requireString('decide', 'chosen', d.chosen)
  if (typeof d.reasoning !== 'string') {
    throw new InvalidArgumentError(
      `ctx.decide: reasoning must be a string (got ${describeValue(d.reasoning)})`,
      { field: 'reasoning' },
    )
  }
  if (!Array.isArray(d.options) || !allHaveStringId(d.options)) {
    throw new InvalidArgumentError(
      `ctx.decide: options must be an array of { id: string, … } (got ${describeValue(d.options)})`,
      {
        field: 'options',
      },
    )
  }
  const criteria = d.criteria ?? []
  if (!Array.isArray(criteria) || !allStrings(criteria)) {
    throw new InvalidArgumentError(
      `ctx.decide: criteria must be an array of criterion ids (got ${describeValue(d.criteria)})`,
      {
        field: 'criteria',
      },
    )
  }
  return {
    intent: d.intent,
    options: d.options,
    chosen: d.chosen,
    reasoning: d.reasoning,
    criteria,
    context: d.context,
  }
}

/** The wire record of the checked decision `d`, the `seq`th of attempt `attempt` of `executionId`. */
export function decisionRecord(
  executionId: string,
  streamId: string,
  attempt: number,
  seq: number,
  correlationId: string,
  d: CheckedDecision,
): DecisionRecord {
  const record: DecisionRecord = {
    k: 'decision',
    executionId,
    streamId,
    attempt,
    seq,
    correlationId,
    intent: d.intent,
    options: d.options,
    chosen: d.chosen,
    reasoning: d.reasoning,
    criteria: d.criteria,
    timestamp: Date.now(),
  }
  if (d.context !== undefined) record.context = d.context
  return record
}

// Loops rather than \`every\` with an arrow: these run on every decision, and an arrow is a new closure per call.
function allHaveStringId(options: readonly DecisionOption[]): boolean {
  for (let i = 0; i < options.length; i++) if (typeof options[i]?.id !== 'string') return false
  return true
}

function allStrings(values: readonly unknown[]): boolean {
  for (let i = 0; i < values.length; i++) if (typeof values[i] !== 'string') return false
  return true
}

/** Copies an outcome's optional fields onto its record (an `Error` becomes its message). */
export function copyOutcomeFields(record: OutcomeRecord, o: OutcomeInput): void {
  if (o.result !== undefined) record.result = o.result
  if (o.error !== undefined) record.error = o.error instanceof Error ? o.error.message : o.error
  if (o.summary !== undefined) record.summary = o.summary
  if (o.tokensUsed !== undefined) record.tokensUsed = o.tokensUsed
  if (o.latencyMs !== undefined) record.latencyMs = o.latencyMs
}

export function checkOutcome(o: OutcomeInput): OutcomeInput {
  if (o === null || typeof o !== 'object' || typeof o.success !== 'boolean') {
    throw new InvalidArgumentError(
      `ctx.recordOutcome: outcome must be { success: boolean, … } (got ${describeValue(o)})`,
      {
        field: 'success',
      },
    )
  }
  for (const field of ['tokensUsed', 'latencyMs'] as const) {
    const v = o[field]
    if (v !== undefined && (typeof v !== 'number' || !Number.isFinite(v) || v < 0)) {
      throw new InvalidArgumentError(
        `ctx.recordOutcome: ${field} must be a finite number >= 0 (got ${describeValue(v)})`,
        { field },
      )
    }
  }
  if (o.summary !== undefined && typeof o.summary !== 'string') {
    throw new InvalidArgumentError(
      `ctx.recordOutcome: summary must be a string (got ${describeValue(o.summary)})`,
      { field: 'summary' },
    )
  }
  return o
}

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

/** The recording half of `ctx`. Every method is a plain function (safe to destructure). Worker thread only. */
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

const SEVERITIES: ReadonlySet<string> = new Set(['low', 'medium', 'high', 'critical'])
const RESERVED_TYPES: ReadonlySet<string> = new Set(BUILT_IN_EVENT_TYPES)

/** Creates the recorder of one execution attempt. */
export function createExecutionRecorder(sink: RecordSink, ids: ExecutionIds): ExecutionRecorder {
  const { executionId, streamId, attempt, correlationId } = ids
  /** Decisions of this attempt: their criteria (copied onto outcomes) and whether an outcome was recorded. */
  const decisions = new Map<string, { criteria: string[]; hasOutcome: boolean }>()
  let seq = 0
  let closed = false

  function send(call: string, record: WireRecord): void {
    if (closed) {
      throw new InvalidArgumentError(
        `ctx.${call} was called after execution ${executionId} (attempt ${attempt}) ended; record before the handler returns`,
        { call, executionId },
      )
    }
    try {
      sink.push(record)
    } catch (err) {
      if (err instanceof RecordInvalidError) {
        throw new RecordInvalidError(`ctx.${call}: ${err.message}`, { ...err.details, call })
      }
      throw err
    }
  }

  return {
    decide(decision) {
      const d = checkDecision(decision)
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
      send('decide', record)
      const id = decisionId(executionId, attempt, seq++)
      decisions.set(id, { criteria: d.criteria, hasOutcome: false })
      return id
    },

    recordOutcome(decisionId, outcome) {
      requireString('recordOutcome', 'decisionId', decisionId)
      const own = decisions.get(decisionId)
      if (own?.hasOutcome) {
        throw new InvalidArgumentError(`ctx.recordOutcome: decision ${decisionId} already has an outcome`, {
          decisionId,
        })
      }
      const record = outcomeRecord(decisionId, checkOutcome(outcome))
      if (own) record.criteria = own.criteria
      send('recordOutcome', record)
      if (own) own.hasOutcome = true
    },

    reportProblem(severity, description, options = {}) {
      if (!SEVERITIES.has(severity)) {
        throw new InvalidArgumentError(
          `ctx.reportProblem: severity must be 'low', 'medium', 'high' or 'critical' (got ${describeValue(severity)})`,
          { severity },
        )
      }
      requireString('reportProblem', 'description', description)
      const record: ProblemRecord = {
        k: 'problem',
        executionId,
        streamId,
        attempt,
        severity,
        description,
        timestamp: Date.now(),
      }
      if (options.decisionId !== undefined)
        record.decisionId = requireString('reportProblem', 'options.decisionId', options.decisionId)
      if (options.suggestedFix !== undefined) {
        record.suggestedFix = requireString('reportProblem', 'options.suggestedFix', options.suggestedFix)
      }
      send('reportProblem', record)
    },

    violateConstraint(constraintId, details) {
      requireString('violateConstraint', 'constraintId', constraintId)
      send('violateConstraint', {
        k: 'violation',
        executionId,
        streamId,
        attempt,
        constraintId,
        details,
        timestamp: Date.now(),
      })
    },

    emit(type, data) {
      requireString('emit', 'type', type)
      if (RESERVED_TYPES.has(type)) {
        throw new InvalidArgumentError(
          `ctx.emit: ${JSON.stringify(type)} is a built-in event type the runtime publishes; pick another name`,
          {
            type,
          },
        )
      }
      send('emit', {
        k: 'event',
        executionId,
        streamId,
        attempt,
        correlationId,
        type,
        data,
        timestamp: Date.now(),
      })
    },

    close() {
      closed = true
    },
  }

  function outcomeRecord(decisionId: string, o: OutcomeInput): OutcomeRecord {
    const record: OutcomeRecord = {
      k: 'outcome',
      executionId,
      streamId,
      attempt,
      decisionId,
      success: o.success,
      timestamp: Date.now(),
    }
    if (o.result !== undefined) record.result = o.result
    if (o.error !== undefined) record.error = o.error instanceof Error ? o.error.message : o.error
    if (o.summary !== undefined) record.summary = o.summary
    if (o.tokensUsed !== undefined) record.tokensUsed = o.tokensUsed
    if (o.latencyMs !== undefined) record.latencyMs = o.latencyMs
    return record
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

function checkDecision(d: DecisionInput): Required<Omit<DecisionInput, 'context'>> & { context?: unknown } {
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
  if (!Array.isArray(d.options) || !d.options.every((o: DecisionOption) => typeof o?.id === 'string')) {
    throw new InvalidArgumentError(
      `ctx.decide: options must be an array of { id: string, … } (got ${describeValue(d.options)})`,
      {
        field: 'options',
      },
    )
  }
  const criteria = d.criteria ?? []
  if (!Array.isArray(criteria) || !criteria.every((c) => typeof c === 'string')) {
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

function checkOutcome(o: OutcomeInput): OutcomeInput {
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

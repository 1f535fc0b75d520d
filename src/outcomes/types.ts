/**
 * Public types of the outcomes module: what handlers pass to `ctx.decide` and friends, and what the
 * {@link OutcomeAggregator} reports.
 *
 * @module
 */
import type { EventBus } from '../events/index.js'
import type { DecisionOption, DecisionRecord, OutcomeRecord, ProblemSeverity } from '../protocol.js'

export type { DecisionOption, ProblemSeverity }

/** What `ctx.decide` takes. */
export interface DecisionInput {
  /** What the decision is about, e.g. `'classify ticket'`. */
  intent: string
  /** The options considered. */
  options: DecisionOption[]
  /** The id of the chosen option. */
  chosen: string
  /** Why it was chosen. */
  reasoning: string
  /** Ids of the goal's success criteria this decision counts toward. @default [] */
  criteria?: string[]
  /** Anything else worth keeping with the decision (must be msgpack-encodable). */
  context?: unknown
}

/** What `ctx.recordOutcome` takes. */
export interface OutcomeInput {
  success: boolean
  result?: unknown
  /** What went wrong; an `Error` is kept as its message. */
  error?: string | Error
  summary?: string
  tokensUsed?: number
  latencyMs?: number
}

/** Optional parts of `ctx.reportProblem`. */
export interface ProblemOptions {
  /** The decision the problem is about. */
  decisionId?: string
  suggestedFix?: string
}

/** An outcome as the aggregator keeps it. */
export interface Outcome {
  success: boolean
  result?: unknown
  error?: string
  summary?: string
  tokensUsed?: number
  latencyMs?: number
  /** The execution that recorded it (may differ from the decision's). */
  executionId: string
  /** The stream of that execution. */
  streamId: string
  attempt: number
  timestamp: number
}

/** A decision as the aggregator keeps it, with its outcome once recorded. Treat as read-only. */
export interface Decision {
  id: string
  executionId: string
  streamId: string
  correlationId: string
  attempt: number
  intent: string
  options: DecisionOption[]
  chosen: string
  reasoning: string
  criteria: string[]
  context?: unknown
  timestamp: number
  outcome?: Outcome
}

/** Facts behind one criterion's progress. */
export interface CriterionEvidence {
  /** Decisions that name the criterion. */
  decisions: number
  /** Their outcomes, successful and failed. */
  outcomes: number
  successes: number
  failures: number
  /** `successes / outcomes`, 0 without outcomes. */
  successRate: number
  /** The target as a fraction (`'90%'` → 0.9). */
  target: number
  weight: number
}

/** One criterion's standing. */
export interface CriterionProgress {
  /** At least `minOutcomes` outcomes and a success rate at or above the target. */
  met: boolean
  /** `successRate / target`, capped at 1 (1 for a target of 0 once an outcome exists; 0 without outcomes). */
  progress: number
  evidence: CriterionEvidence
}

/** Violations of one constraint. */
export interface ConstraintViolationSummary {
  constraintId: string
  /** The goal's kind for this constraint; an id the goal does not name counts as `soft`. */
  kind: 'hard' | 'soft'
  /** False when the goal has no constraint with this id. */
  known: boolean
  description?: string
  count: number
  lastDetails: unknown
  lastExecutionId: string
  lastStreamId: string
  lastTimestamp: number
}

/** Counters over everything recorded since construction or the last `reset()`, exact regardless of retention. */
export interface GoalMetrics {
  totalDecisions: number
  successfulOutcomes: number
  failedOutcomes: number
  /** `successfulOutcomes / (successfulOutcomes + failedOutcomes)`, 0 without outcomes. */
  successRate: number
  /** Streams that recorded at least one decision. */
  streamsActive: number
  /** Executions that recorded at least one decision (a retried execution counts once). */
  executionsTotal: number
}

/** What {@link OutcomeAggregator.evaluateGoalProgress} returns. */
export interface GoalProgress {
  /** The goal's id; undefined when the runtime has no goal. */
  goalId: string | undefined
  /** Criteria progress weighted by their `weight`, in [0, 1]. */
  overallProgress: number
  criteria: Record<string, CriterionProgress>
  /** One entry per violated constraint, in order of first violation. */
  constraintViolations: ConstraintViolationSummary[]
  metrics: GoalMetrics
  /**
   * `complete`: every criterion met and no hard constraint violated. `adjust`: a hard constraint is
   * violated, or after `adjustAfterDecisions` decisions progress is still below `lowProgress`.
   * `continue`: otherwise (also without a goal).
   */
  recommendation: 'continue' | 'adjust' | 'complete'
}

/** Counters of one stream. */
export interface StreamOutcomeStats {
  decisions: number
  successfulOutcomes: number
  failedOutcomes: number
  problems: number
  violations: number
}

/** What {@link OutcomeAggregator.stats} returns. */
export interface OutcomeStats {
  /** Decisions held for queries now (at most `maxDecisions`). */
  retainedDecisions: number
  maxDecisions: number
  /** Decisions dropped by retention; their counts stay in every counter. */
  droppedDecisions: number
  totalDecisions: number
  successfulOutcomes: number
  failedOutcomes: number
  /** Outcomes whose decision was neither retained nor made by the recording attempt (counted in totals only). */
  orphanOutcomes: number
  /** Outcomes that replaced an earlier outcome of the same retained decision. */
  replacedOutcomes: number
  problems: Record<ProblemSeverity, number>
  violations: { hard: number; soft: number }
  executionsTotal: number
  streams: Record<string, StreamOutcomeStats>
}

/** Options of {@link OutcomeAggregator}. */
export interface OutcomeAggregatorOptions {
  /** Where `goal_progress`, `goal_achieved` and `constraint_violation` are published. @default none (nothing is published) */
  bus?: EventBus
  /**
   * Called with each record `recordDecision` and `recordOutcome` make on the main thread, once counted (the
   * runtime's run log keeps them, like a handler's). @default none
   */
  onMainRecord?: (record: DecisionRecord | OutcomeRecord) => void
  /** Decisions kept for `decisionsByStream`/`decisionsByExecution`/`recentDecisions`; the oldest go first. @default 10_000 */
  maxDecisions?: number
  /** Outcomes a criterion needs before it can be `met`. @default 1 */
  minOutcomes?: number
  /** Decisions after which low progress turns the recommendation to `adjust`. @default 20 */
  adjustAfterDecisions?: number
  /** Overall progress below which, after `adjustAfterDecisions` decisions, the recommendation is `adjust`. @default 0.5 */
  lowProgress?: number
  /** `goal_progress` is published when overall progress moved at least this much since the last one (or a criterion's `met` or the recommendation changed). @default 0.01 */
  progressStep?: number
}

/** {@link OutcomeAggregatorOptions} with every default filled. Internal. */
export type ResolvedOutcomeAggregatorOptions = Required<
  Omit<OutcomeAggregatorOptions, 'bus' | 'onMainRecord'>
>

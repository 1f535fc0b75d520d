/**
 * Outcomes: the worker-side recorder behind `ctx.decide` and friends, the router that consumes the
 * records the channel (`channel/`) brings to the main thread, and the {@link OutcomeAggregator}.
 *
 * @module
 */

export type { ExecutionIds, ExecutionRecorder, RecordSink } from './execution-recorder.js'
export { createExecutionRecorder } from './execution-recorder.js'
export { criterionStanding, recommendationOf } from './goal.js'
export type { AggregatedRecord, AggregatorSnapshot } from './outcome-aggregator.js'
export { OutcomeAggregator } from './outcome-aggregator.js'
export type { RecordTargets } from './record-router.js'
export { routeRecord, routeRecords } from './record-router.js'
export type {
  ConstraintViolationSummary,
  CriterionEvidence,
  CriterionProgress,
  Decision,
  DecisionInput,
  DecisionOption,
  GoalMetrics,
  GoalProgress,
  Outcome,
  OutcomeAggregatorOptions,
  OutcomeInput,
  OutcomeStats,
  ProblemOptions,
  ProblemSeverity,
  StreamOutcomeStats,
} from './types.js'

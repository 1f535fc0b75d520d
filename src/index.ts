/**
 * agentpool — multi-entry-point agents on a multi-threaded worker pool (main-thread API).
 * Handler modules import from `agentpool/handler` instead.
 *
 * @module
 */
export type {
  ClusterEntryPointStats,
  ClusterStats,
  ClusterTimerStats,
  RuntimeCluster,
} from './cluster/index.js'
export type {
  ClusterOptions,
  Constraint,
  DurabilityOptions,
  EntryPointConfig,
  EventsOptions,
  Goal,
  IdempotencyOptions,
  OutcomesOptions,
  PoolOptions,
  RedisConnectionOptions,
  RuntimeConfig,
  ScopeIsolation,
  StateOptions,
  SuccessCriterion,
  TriggerConfig,
  WebhookOptions,
} from './config/index.js'
export { IsolationLevel, loadConfigFile, resolveConfig } from './config/index.js'
export * from './errors.js'
export * from './events/index.js'
export type {
  Decision,
  DecisionInput,
  GoalProgress,
  Outcome,
  OutcomeAggregatorOptions,
  OutcomeInput,
  OutcomeStats,
  ProblemSeverity,
} from './outcomes/index.js'
export { OutcomeAggregator } from './outcomes/index.js'
export type * from './runtime/index.js'
export { ABORT_GRACE_MS, AgentRuntime, MAX_BATCH } from './runtime/index.js'
export { SharedBufferManager, StateScope, StreamBuffer } from './state/index.js'
export {
  MAX_EVENT_DEPTH,
  SIGNATURE_HEADER,
  type SignWebhookBodyOptions,
  signWebhookBody,
  TRIGGER_REFUSED,
  type TriggerRefusedData,
} from './triggers/index.js'

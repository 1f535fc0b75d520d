/**
 * The runtime: `AgentRuntime` and its public types. The only door into this folder.
 *
 * @module
 */
export { AgentRuntime, runtimeOf } from './agent-runtime.js'
/** @internal Execution ids (cluster mode makes them for the jobs it admits). */
export { newExecutionId } from './execution-id.js'
export { checkHandlerModules } from './handler-check.js'
export { ABORT_GRACE_MS, MAX_BATCH } from './limits.js'
/** @internal The admission and result seam (cluster mode implements it). */
export type { AdmissionSource, AdmitRequest, LocalRunner, ResultSource, RunAs } from './sources.js'
export type * from './types.js'
export type { WorkerSetup } from './worker-pool.js'

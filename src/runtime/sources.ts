/**
 * The seam between the runtime and where its executions come from and where their results are found.
 * In one process both are the local engine ({@link localSources}); in cluster mode both are BullMQ
 * queues on Redis (see `src/cluster/`), whose jobs the host runs on its local engine through
 * {@link LocalRunner}. Main thread only.
 *
 * @module
 */
import type { Decision } from '../outcomes/index.js'
import type { ExecutionResult, TriggerOptions } from './types.js'

/** One admission as every trigger (api, webhook, timer, event, delegation) asks for it. */
export interface AdmitRequest {
  entryPointId: string
  input: unknown
  opts: TriggerOptions
  /** Event-cascade depth: 0 for outside triggers. */
  depth: number
  /** Started by `ctx.trigger` from a running execution. */
  delegated: boolean
  /** Called with the id once admitted (before the execution can start where admission is local). */
  onAdmitted?: (executionId: string) => void
  /**
   * The caller waits for the result and acknowledges nothing before it (`triggerAndWait`, a delegation
   * awaited): the admission needs no acknowledgement of its own, since the result is reported only once
   * the execution's end, and so its admission, is durable. A run log may then commit the admission together
   * with the end. @default false
   */
  resultAwaited?: boolean
}

/** Where executions are admitted. */
export interface AdmissionSource {
  /**
   * Admits one execution and resolves with its id once the admission is acknowledged (committed to the
   * run log, or stored in Redis); the first execution's id for a repeated idempotency key.
   * @throws QueueFullError, NotRunningError, UnknownEntryPointError, ClusterUnavailableError: nothing admitted.
   */
  admit(request: AdmitRequest): Promise<string>
}

/** Where results are awaited. */
export interface ResultSource {
  /**
   * Resolves with the execution's result once it is final; undefined for an id this source does not
   * know. `entryPointId` narrows the search when the caller knows it.
   */
  wait(executionId: string, entryPointId?: string): Promise<ExecutionResult | undefined>
}

/** A job admitted elsewhere (cluster mode) that this process runs under the job's id and attempt. */
export interface RunAs {
  id: string
  /** 1 for the first attempt; retries are the queue's, so the local engine never retries it. */
  attempt: number
}

/** Runs admitted work on this process's engine (what a cluster host does with each job it takes). */
export interface LocalRunner {
  run(request: Omit<AdmitRequest, 'onAdmitted'>, runAs: RunAs): Promise<ExecutionResult>
  /** The decisions (with their outcomes) this process's aggregator retains for one execution. */
  decisionsOf(streamId: string, executionId: string): Decision[]
  /**
   * Publishes `trigger_fired` for a timer tick this process is about to run: in cluster mode the queue's
   * job scheduler admitted it, not a host, so the host that runs it reports it.
   */
  timerFired(entryPointId: string, executionId: string): void
}

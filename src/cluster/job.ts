/**
 * The cluster's wire protocol: what a job carries between the host that admits an execution and the host
 * that runs it, how agentpool's options map onto BullMQ's job options, and the Redis key names. Both sides
 * import it. Jobs travel as JSON (BullMQ's encoding): inputs and outputs should be JSON values.
 *
 * @module
 */
import type { Job, JobsOptions } from 'bullmq'
import type { ResolvedClusterOptions, ResolvedEntryPoint } from '../config/index.js'
import { API_META } from '../protocol.js'
import type { AdmitRequest, ExecutionResult } from '../runtime/index.js'

/** A job's data: the admission, less what BullMQ carries itself (id, priority, idempotency key). */
export interface JobData {
  input: unknown
  correlationId?: string
  /** The trigger's own priority (added to the entry point's on the host that runs it). */
  priority?: number
  timeoutMs?: number
  /** Absent for an api trigger's (`{ trigger: 'api' }`), the most common. */
  meta?: Record<string, unknown>
  /** Event-cascade depth; absent for 0. */
  depth?: number
  /** Started by `ctx.trigger`; absent for false. */
  delegated?: true
}

/**
 * A job's return value: the execution's result on the host that ran it, less what the job itself says
 * (id, entry point, a correlation id equal to the id, the duration). BullMQ stores it in the job's hash
 * and in the queue's `completed` event, and every reader of the events parses it: it is kept small.
 * Absent fields take the usual value: `status` completed, `attempts` 1, `conflicts` 0.
 */
export interface JobResult {
  status?: ExecutionResult['status']
  output?: unknown
  error?: ExecutionResult['error']
  attempts?: number
  conflicts?: number
  correlationId?: string
  startedAt: number
  completedAt: number
}

/** BullMQ priorities: 1 is the highest, {@link MAX_PRIORITY} the lowest. */
const MAX_PRIORITY = 2_097_152
/** The BullMQ priority of agentpool priority 0; each agentpool point above it is one place higher. */
const MID_PRIORITY = 1_048_576

/**
 * BullMQ's priority for an agentpool priority (higher starts first): every job gets one, since BullMQ
 * starts jobs without a priority before every prioritized job. Fractions are rounded.
 */
export function bullPriority(priority: number | undefined): number {
  return Math.min(MAX_PRIORITY, Math.max(1, MID_PRIORITY - Math.round(priority ?? 0)))
}

/** Backoff of a retried job: 10 ms doubled per attempt, as the local engine retries. */
const RETRY_BASE_MS = 10

/** BullMQ's prefix of an agent's keys: every host with the same prefix and name shares its queues. */
export function keyPrefix(cluster: ResolvedClusterOptions): string {
  return `${cluster.prefix}:${cluster.name}`
}

/** The job data of an admission. */
export function jobDataOf(r: Pick<AdmitRequest, 'input' | 'opts' | 'depth' | 'delegated'>): JobData {
  const { correlationId, priority, timeoutMs, meta } = r.opts
  const data: JobData = { input: r.input }
  if (r.depth !== 0) data.depth = r.depth
  if (r.delegated) data.delegated = true
  if (correlationId !== undefined) data.correlationId = correlationId
  if (priority !== undefined && priority !== 0) data.priority = priority
  if (timeoutMs !== undefined) data.timeoutMs = timeoutMs
  if (meta !== undefined && meta !== API_META) data.meta = { ...meta }
  return data
}

/**
 * BullMQ options of one admission: id, priority, attempts and backoff (with retries), deduplication, and
 * the retention of a job BullMQ fails itself (one that stalled too often); the workers' own options say
 * how many finished jobs are kept, so a job does not carry that.
 */
export function jobOptionsOf(
  id: string,
  r: Pick<AdmitRequest, 'opts'>,
  ep: ResolvedEntryPoint,
  cluster: ResolvedClusterOptions,
  ttlMs: number,
): JobsOptions {
  const options: JobsOptions = {
    jobId: id,
    priority: bullPriority(r.opts.priority),
    removeOnFail: { count: cluster.keepResults },
  }
  if (ep.maxRetries > 0) {
    options.attempts = ep.maxRetries + 1
    options.backoff = { type: 'exponential', delay: RETRY_BASE_MS }
  }
  if (r.opts.idempotencyKey !== undefined) {
    options.deduplication = { id: r.opts.idempotencyKey, ttl: ttlMs }
  }
  return options
}

/**
 * The slot a scheduler's job was made for: its id ends with the slot's epoch ms (`repeat:<id>:<ms>`); else
 * when it was due.
 */
export function scheduledAtOf(job: Pick<Job, 'id' | 'timestamp' | 'delay'>): number {
  const slot = Number(job.id?.slice(job.id.lastIndexOf(':') + 1))
  return Number.isSafeInteger(slot) && slot > 0 ? slot : job.timestamp + (job.delay ?? 0)
}

/** The return value of the job that ran `result`. */
export function jobResultOf(result: ExecutionResult): JobResult {
  const r: JobResult = { startedAt: result.startedAt, completedAt: result.completedAt }
  if (result.status !== 'completed') r.status = result.status
  if (result.output !== undefined) r.output = result.output
  if (result.error !== undefined) r.error = result.error
  if (result.attempts !== 1) r.attempts = result.attempts
  if (result.conflicts !== 0) r.conflicts = result.conflicts
  if (result.correlationId !== result.executionId) r.correlationId = result.correlationId
  return r
}

/** The execution result a job's return value stands for. */
export function executionResultOf(jobId: string, entryPointId: string, r: JobResult): ExecutionResult {
  const result: ExecutionResult = {
    executionId: jobId,
    streamId: entryPointId,
    correlationId: r.correlationId ?? jobId,
    status: r.status ?? 'completed',
    attempts: r.attempts ?? 1,
    conflicts: r.conflicts ?? 0,
    startedAt: r.startedAt,
    completedAt: r.completedAt,
    durationMs: r.completedAt - r.startedAt,
  }
  if (r.output !== undefined) result.output = r.output
  if (r.error !== undefined) result.error = r.error
  return result
}

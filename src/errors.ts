/**
 * The error registry: every error agentpool raises is an {@link AgentPoolError} with a stable `code`
 * (`AGENTPOOL_*`) and a named subclass per kind. Errors cross threads as {@link SerializedError} and are
 * rebuilt on the other side with their class, code, message and stack intact.
 *
 * @module
 */

/** Stable error codes. A code never changes meaning once published. */
export const ErrorCode = {
  UNKNOWN_ENTRY_POINT: 'AGENTPOOL_UNKNOWN_ENTRY_POINT',
  NOT_RUNNING: 'AGENTPOOL_NOT_RUNNING',
  QUEUE_FULL: 'AGENTPOOL_QUEUE_FULL',
  CONFIG: 'AGENTPOOL_CONFIG',
  INVALID_ARGUMENT: 'AGENTPOOL_INVALID_ARGUMENT',
  STATE_CONFLICT: 'AGENTPOOL_STATE_CONFLICT',
  STATE_CAPACITY: 'AGENTPOOL_STATE_CAPACITY',
  STATE_VALUE: 'AGENTPOOL_STATE_VALUE',
  STATE_KEY: 'AGENTPOOL_STATE_KEY',
  PERMISSION: 'AGENTPOOL_PERMISSION',
  TIMEOUT: 'AGENTPOOL_TIMEOUT',
  CANCELLED: 'AGENTPOOL_CANCELLED',
  HANDLER_FAILED: 'AGENTPOOL_HANDLER_FAILED',
  HANDLER_MODULE: 'AGENTPOOL_HANDLER_MODULE',
  WORKER_CRASHED: 'AGENTPOOL_WORKER_CRASHED',
  RECORD_INVALID: 'AGENTPOOL_RECORD_INVALID',
  WEBHOOK_NOT_FOUND: 'AGENTPOOL_WEBHOOK_NOT_FOUND',
  WEBHOOK_METHOD_NOT_ALLOWED: 'AGENTPOOL_WEBHOOK_METHOD_NOT_ALLOWED',
  WEBHOOK_SIGNATURE: 'AGENTPOOL_WEBHOOK_SIGNATURE',
  WEBHOOK_BODY_TOO_LARGE: 'AGENTPOOL_WEBHOOK_BODY_TOO_LARGE',
  WEBHOOK_BAD_REQUEST: 'AGENTPOOL_WEBHOOK_BAD_REQUEST',
  CASCADE_DEPTH: 'AGENTPOOL_CASCADE_DEPTH',
  /** A bug in agentpool itself; the message says no more, so nothing internal leaks to a client. */
  INTERNAL: 'AGENTPOOL_INTERNAL',
  /** The main thread gave up spinning for the state commit lock (it never blocks on it). */
  STATE_BUSY: 'AGENTPOOL_STATE_BUSY',
  /** A server could not listen: another process holds its configured port. */
  PORT_IN_USE: 'AGENTPOOL_PORT_IN_USE',
  /** The run log (`durability`) cannot be opened, written or read. */
  DURABILITY: 'AGENTPOOL_DURABILITY',
  /** A state write through the `ctx.state` of an execution that has already ended. */
  EXECUTION_ENDED: 'AGENTPOOL_EXECUTION_ENDED',
  /** A function run under the state commit lock held it past `state.lockBudgetMs`; its thread was stopped. */
  STATE_LOCK_BUDGET: 'AGENTPOOL_STATE_LOCK_BUDGET',
  /** Cluster mode: Redis cannot be reached, so nothing can be admitted or awaited through it now. */
  CLUSTER_UNAVAILABLE: 'AGENTPOOL_CLUSTER_UNAVAILABLE',
} as const

export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode]

/** Base class of every error agentpool raises. `code` is stable; `message` is for people. */
export class AgentPoolError extends Error {
  readonly code: ErrorCode
  /** Structured facts about the failure (the offending field, value, key …), safe to log. */
  readonly details?: Record<string, unknown>

  constructor(
    code: ErrorCode,
    message: string,
    options?: { cause?: unknown; details?: Record<string, unknown> },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause })
    this.code = code
    if (options?.details !== undefined) this.details = options.details
    this.name = new.target.name
  }
}

/** `trigger` named an entry point the runtime does not have. */
export class UnknownEntryPointError extends AgentPoolError {
  constructor(entryPointId: string, known: readonly string[]) {
    super(
      ErrorCode.UNKNOWN_ENTRY_POINT,
      `unknown entry point ${JSON.stringify(entryPointId)}; known entry points: ${known.map((k) => JSON.stringify(k)).join(', ') || '(none)'}`,
      { details: { entryPointId } },
    )
  }
}

/** The runtime is not started, or is stopping. */
export class NotRunningError extends AgentPoolError {
  constructor(what: string) {
    super(
      ErrorCode.NOT_RUNNING,
      `${what}: the runtime is not running (call start() first, or it was stopped)`,
    )
  }
}

/** The stream's queue is at `maxQueue`; nothing was admitted and nothing already admitted is affected. */
export class QueueFullError extends AgentPoolError {
  constructor(streamId: string, maxQueue: number) {
    super(
      ErrorCode.QUEUE_FULL,
      `stream ${JSON.stringify(streamId)} is full: ${maxQueue} executions already wait (maxQueue); retry later or raise maxQueue`,
      { details: { streamId, maxQueue } },
    )
  }
}

/** One problem found in a configuration: where, what value, and what is wrong with it. */
export interface ConfigIssue {
  /** Dotted path of the field, e.g. `entryPoints[2].maxQueue`. */
  path: string
  message: string
  value?: unknown
}

/** The configuration was refused. `issues` lists every problem at once. */
export class ConfigError extends AgentPoolError {
  readonly issues: ConfigIssue[]

  constructor(issues: ConfigIssue[], source?: string) {
    const lines = issues.map(
      (i) =>
        `  - ${i.path || '(root)'}: ${i.message}${'value' in i ? ` (got ${describeValue(i.value)})` : ''}`,
    )
    super(
      ErrorCode.CONFIG,
      `invalid agentpool config${source ? ` in ${source}` : ''}:\n${lines.join('\n')}`,
      {
        details: { issues },
      },
    )
    this.issues = issues
  }
}

/** A public method got an argument it cannot use. */
export class InvalidArgumentError extends AgentPoolError {
  constructor(message: string, details?: Record<string, unknown>) {
    super(ErrorCode.INVALID_ARGUMENT, message, details ? { details } : undefined)
  }
}

/** A `synchronized` write found the key changed since this execution read it. Retry the execution. */
export class StateConflictError extends AgentPoolError {
  constructor(key: string, scope: string, details?: Record<string, unknown>) {
    super(
      ErrorCode.STATE_CONFLICT,
      `state conflict on ${scope} key ${JSON.stringify(key)}: it changed after this execution read it; use update() or retry`,
      { details: { key, scope, ...details } },
    )
  }
}

/** A state region is full (`state.maxBytes` or `state.maxKeys`). Nothing was written. */
export class StateCapacityError extends AgentPoolError {
  constructor(message: string, details?: Record<string, unknown>) {
    super(ErrorCode.STATE_CAPACITY, message, details ? { details } : undefined)
  }
}

/** A value cannot be stored (function, symbol, too large …). The old value stays. */
export class StateValueError extends AgentPoolError {
  constructor(message: string, details?: Record<string, unknown>) {
    super(ErrorCode.STATE_VALUE, message, details ? { details } : undefined)
  }
}

/** A key is not a string, is empty or is too long. */
export class StateKeyError extends AgentPoolError {
  constructor(message: string, details?: Record<string, unknown>) {
    super(ErrorCode.STATE_KEY, message, details ? { details } : undefined)
  }
}

/** A read or write outside what `withPermissions` allows. */
export class PermissionError extends AgentPoolError {
  constructor(operation: 'read' | 'write', key: string, allowed: readonly string[]) {
    super(
      ErrorCode.PERMISSION,
      `${operation} of key ${JSON.stringify(key)} is not permitted; this buffer may ${operation}: ${allowed.map((k) => JSON.stringify(k)).join(', ') || '(nothing)'}`,
      { details: { operation, key, allowed: [...allowed] } },
    )
  }
}

/** The execution ran past its `timeoutMs`. */
export class ExecutionTimeoutError extends AgentPoolError {
  constructor(executionId: string, timeoutMs: number) {
    super(ErrorCode.TIMEOUT, `execution ${executionId} timed out after ${timeoutMs} ms`, {
      details: { executionId, timeoutMs },
    })
  }
}

/** The execution was cancelled (its `signal` aborted, or the runtime stopped without drain). */
export class ExecutionCancelledError extends AgentPoolError {
  constructor(executionId: string, reason: string) {
    super(ErrorCode.CANCELLED, `execution ${executionId} was cancelled: ${reason}`, {
      details: { executionId },
    })
  }
}

/** The handler threw or rejected. `cause` is the handler's error, rebuilt with its stack. */
export class HandlerFailedError extends AgentPoolError {
  constructor(message: string, cause?: unknown) {
    super(ErrorCode.HANDLER_FAILED, message, { cause })
  }
}

/** A handler module could not be loaded or does not export a handler. */
export class HandlerModuleError extends AgentPoolError {
  constructor(message: string, details?: Record<string, unknown>) {
    super(ErrorCode.HANDLER_MODULE, message, details ? { details } : undefined)
  }
}

/** A server (`webhook` or `metrics`) could not listen because another process holds its port. */
export class PortInUseError extends AgentPoolError {
  constructor(option: string, host: string, port: number) {
    super(
      ErrorCode.PORT_IN_USE,
      `${option} ${port} on ${host} is already in use by another process; stop that process, or choose another ${option} (0 picks a free port)`,
      { details: { option, host, port } },
    )
  }
}

/** The thread running the execution died (process.exit, uncaught error, resource limit, terminated). */
export class WorkerCrashedError extends AgentPoolError {
  constructor(message: string, details?: Record<string, unknown>) {
    super(ErrorCode.WORKER_CRASHED, message, details ? { details } : undefined)
  }
}

/** A decision, outcome or event could not be encoded; nothing of it was sent. */
export class RecordInvalidError extends AgentPoolError {
  constructor(message: string, details?: Record<string, unknown>) {
    super(ErrorCode.RECORD_INVALID, message, details ? { details } : undefined)
  }
}

/** A webhook request was refused; `status` is the HTTP status it is answered with. */
export class WebhookRequestError extends AgentPoolError {
  readonly status: number

  constructor(
    code:
      | typeof ErrorCode.WEBHOOK_NOT_FOUND
      | typeof ErrorCode.WEBHOOK_METHOD_NOT_ALLOWED
      | typeof ErrorCode.WEBHOOK_SIGNATURE
      | typeof ErrorCode.WEBHOOK_BODY_TOO_LARGE
      | typeof ErrorCode.WEBHOOK_BAD_REQUEST,
    status: number,
    message: string,
  ) {
    super(code, message, { details: { status } })
    this.status = status
  }
}

/** An event-triggered execution was not started: the cascade of events triggering executions is too deep. */
export class CascadeDepthError extends AgentPoolError {
  constructor(entryPointId: string, eventType: string, depth: number, maxDepth: number) {
    super(
      ErrorCode.CASCADE_DEPTH,
      `event ${JSON.stringify(eventType)} did not trigger ${JSON.stringify(entryPointId)}: cascade depth ${depth} exceeds the limit of ${maxDepth} (events triggering executions that emit events); break the cycle or narrow the event trigger`,
      { details: { entryPointId, eventType, depth, maxDepth } },
    )
  }
}

/**
 * The main thread could not take the state commit lock within its bounded spin (a live worker held it
 * throughout). The main thread never blocks on it; nothing was written — retry the call.
 */
export class StateBusyError extends AgentPoolError {
  constructor(operation: string, spinMs: number) {
    super(
      ErrorCode.STATE_BUSY,
      `state ${operation} on the main thread gave up after ${spinMs} ms: a worker held the commit lock throughout; nothing was written, retry`,
      { details: { operation, spinMs } },
    )
  }
}

/**
 * A state write through the `ctx.state` of an execution that has ended (it completed, failed, timed out or
 * was cancelled) — typically from a timer or promise the handler left running. Nothing was written: an
 * ended execution's state is freed, and a late write must not bring it back.
 */
export class ExecutionEndedError extends AgentPoolError {
  constructor(executionId: string, operation = 'write') {
    super(
      ErrorCode.EXECUTION_ENDED,
      `state ${operation} refused: execution ${executionId} has ended (a timer or promise its handler left running?); nothing was written`,
      { details: { executionId, operation } },
    )
  }
}

/**
 * An execution held the state commit lock (inside an `update`/`transaction` function, which runs with the
 * lock held) for longer than `state.lockBudgetMs`: every other commit was waiting for it. Its thread was
 * stopped, the lock recovered (its commit rolled back) and the execution failed with this error.
 */
export class StateLockBudgetError extends AgentPoolError {
  constructor(executionId: string, budgetMs: number) {
    super(
      ErrorCode.STATE_LOCK_BUDGET,
      `execution ${executionId} held the state commit lock for more than state.lockBudgetMs (${budgetMs} ms) — an update() or transaction() function that never returns? Its thread was stopped and its commit rolled back`,
      { details: { executionId, lockBudgetMs: budgetMs } },
    )
  }
}

/**
 * The run log cannot be used: its file cannot be created or written (permissions, a full disk), is not an
 * SQLite database or is damaged, is in use by another process, or better-sqlite3 is not installed. Names the file.
 */
export class DurabilityError extends AgentPoolError {
  constructor(path: string, problem: string, cause?: unknown) {
    super(ErrorCode.DURABILITY, `durability.path ${JSON.stringify(path)}: ${problem}`, {
      cause,
      details: { path },
    })
  }
}

/**
 * Cluster mode: Redis cannot be reached (down, restarting, unreachable), so the execution was not
 * admitted; nothing already admitted is affected. Retry later: hosts reconnect by themselves.
 */
export class ClusterUnavailableError extends AgentPoolError {
  constructor(what: string, cause?: unknown) {
    const why = cause instanceof Error ? `: ${cause.message}` : ''
    super(
      ErrorCode.CLUSTER_UNAVAILABLE,
      `${what}: Redis is unavailable, nothing was admitted${why}; retry later (hosts reconnect by themselves)`,
      { cause },
    )
  }
}

/** An error as it crosses a thread boundary. */
export interface SerializedError {
  name: string
  message: string
  code?: string
  stack?: string
  details?: Record<string, unknown>
  cause?: SerializedError
}

const classesByCode: Record<string, new (...args: never[]) => AgentPoolError> = {}
for (const cls of [
  UnknownEntryPointError,
  NotRunningError,
  QueueFullError,
  ConfigError,
  InvalidArgumentError,
  StateConflictError,
  StateCapacityError,
  StateValueError,
  StateKeyError,
  PermissionError,
  ExecutionTimeoutError,
  ExecutionCancelledError,
  HandlerFailedError,
  HandlerModuleError,
  WorkerCrashedError,
  RecordInvalidError,
  StateBusyError,
  DurabilityError,
  ExecutionEndedError,
  StateLockBudgetError,
  ClusterUnavailableError,
]) {
  classesByCode[cls.name] = cls as never
}
for (const cls of [WebhookRequestError, CascadeDepthError]) classesByCode[cls.name] = cls as never

/** Turns any thrown value into a plain object that survives structured clone and msgpack. */
export function serializeError(err: unknown, depth = 0): SerializedError {
  if (err instanceof Error) {
    const out: SerializedError = { name: err.name, message: err.message }
    if (err.stack !== undefined) out.stack = err.stack
    const code = (err as { code?: unknown }).code
    if (typeof code === 'string') out.code = code
    const details = (err as { details?: unknown }).details
    if (details && typeof details === 'object') out.details = safeDetails(details as Record<string, unknown>)
    if (err.cause !== undefined && depth < 4) out.cause = serializeError(err.cause, depth + 1)
    return out
  }
  return { name: 'Error', message: typeof err === 'string' ? err : describeValue(err) }
}

/**
 * Rebuilds an error sent by {@link serializeError}. AgentPool errors come back as their own class
 * (matched by name), others as a plain `Error` with the original name, message and stack.
 */
export function deserializeError(s: SerializedError): Error {
  const cls = classesByCode[s.name]
  const err: Error = cls ? Object.create(cls.prototype) : new Error(s.message)
  Object.defineProperty(err, 'message', { value: s.message, writable: true, configurable: true })
  Object.defineProperty(err, 'name', { value: s.name, writable: true, configurable: true })
  if (s.stack !== undefined)
    Object.defineProperty(err, 'stack', { value: s.stack, writable: true, configurable: true })
  if (s.code !== undefined) (err as { code?: string }).code = s.code
  if (s.details !== undefined) (err as { details?: unknown }).details = s.details
  if (s.cause !== undefined) (err as { cause?: unknown }).cause = deserializeError(s.cause)
  return err
}

function safeDetails(d: Record<string, unknown>): Record<string, unknown> {
  try {
    return structuredClone(d)
  } catch {
    return { note: 'details could not be copied across threads' }
  }
}

/** A short, safe rendering of any value for an error message. */
export function describeValue(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v.length > 80 ? `${v.slice(0, 77)}...` : v)
  if (typeof v === 'function') return 'a function'
  if (typeof v === 'symbol') return 'a symbol'
  if (typeof v === 'bigint') return `${v}n`
  if (v === undefined) return 'undefined'
  try {
    const s = JSON.stringify(v)
    return s === undefined ? String(v) : s.length > 80 ? `${s.slice(0, 77)}...` : s
  } catch {
    return Object.prototype.toString.call(v)
  }
}

/**
 * Final results: built once when an execution ends, and kept for `waitForExecution` after nobody was
 * waiting (the most recent {@link RESULT_RETENTION}). Main thread only.
 *
 * @module
 */
import { ErrorCode } from '../errors.js'
import type { Execution } from './execution-stream.js'
import type { ExecutionResult, ExecutionStatus } from './types.js'

/** Finished results kept for `waitForExecution` after nobody was waiting. */
export const RESULT_RETENTION = 10_000

/** An error as an execution's end carries it: an `AgentPoolError`, or one serialized across a thread. */
export interface EndError {
  code?: string
  message: string
  name?: string
  stack?: string
}

export class ResultStore {
  private readonly results = new Map<string, ExecutionResult>()
  /**
   * Ids in `results`, oldest first, as a ring: evicting through `Map.keys().next()` instead would skip an
   * ever longer run of deleted entries on every call.
   */
  private readonly order: (string | undefined)[] = new Array(RESULT_RETENTION)
  private next = 0

  get(executionId: string): ExecutionResult | undefined {
    return this.results.get(executionId)
  }

  /** Keeps `r`, evicting the oldest kept result once {@link RESULT_RETENTION} are kept. */
  remember(r: ExecutionResult): void {
    const evicted = this.order[this.next]
    if (evicted !== undefined) this.results.delete(evicted)
    this.order[this.next] = r.executionId
    this.next = (this.next + 1) % RESULT_RETENTION
    this.results.set(r.executionId, r)
  }
}

/** The final result of `e`. */
export function buildResult(
  e: Execution,
  status: ExecutionStatus,
  error: EndError | undefined,
  output: unknown,
  completedAt: number,
): ExecutionResult {
  const startedAt = e.startedAt || completedAt
  const result: ExecutionResult = {
    executionId: e.id,
    streamId: e.stream.id,
    correlationId: e.correlationId,
    status,
    attempts: e.attempt,
    conflicts: e.conflicts,
    startedAt,
    completedAt,
    durationMs: completedAt - startedAt,
  }
  if (status === 'completed') result.output = output
  if (error !== undefined) result.error = publicError(error)
  return result
}

function publicError(error: EndError): NonNullable<ExecutionResult['error']> {
  const out: NonNullable<ExecutionResult['error']> = {
    code: error.code ?? ErrorCode.HANDLER_FAILED,
    message: error.message,
  }
  if (error.name !== undefined) out.name = error.name
  if (error.stack !== undefined) out.stack = error.stack
  return out
}

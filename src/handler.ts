/**
 * The public API for handler modules (`agentpool/handler`). A handler module runs on a pool thread, never
 * on the main thread:
 *
 * ```ts
 * import { defineHandler } from 'agentpool/handler'
 * export default defineHandler(async (input: { ticketId: string }, ctx) => {
 *   const n = ctx.state.update('processing_count', (c = 0) => c + 1, { scope: 'stream' })
 *   return { n }
 * })
 * ```
 *
 * @module
 */
import type { createExecutionRecorder } from './outcomes/index.js'
import type { ExecutionResult } from './runtime/types.js'
import type { StreamBuffer } from './state/index.js'

type Recorder = ReturnType<typeof createExecutionRecorder>

/** What a handler gets besides its input. */
export interface HandlerContext {
  readonly executionId: string
  /** The stream the execution belongs to (the entry point's id). */
  readonly streamId: string
  readonly entryPointId: string
  readonly correlationId: string
  /** 1 for the first attempt, 2 for the first retry, … */
  readonly attempt: number
  /** How the execution was triggered: `trigger` kind and, for a webhook, path, query and headers. */
  readonly meta: Readonly<Record<string, unknown>>
  /** Aborts when the execution times out, is cancelled, or the runtime stops without drain. */
  readonly signal: AbortSignal
  /** Shared state: execution, stream and global scopes (see docs/architecture.md, "Shared state"). Synchronous. */
  readonly state: StreamBuffer
  /** Records a decision; returns its id, for `recordOutcome`. */
  readonly decide: Recorder['decide']
  /** Records the outcome of a decision made earlier. */
  readonly recordOutcome: Recorder['recordOutcome']
  /** Reports a problem (severity, description, optional decision and suggested fix). */
  readonly reportProblem: Recorder['reportProblem']
  /** Reports that a goal constraint was broken. */
  readonly violateConstraint: Recorder['violateConstraint']
  /** Publishes a custom event on the main thread's event bus. */
  readonly emit: Recorder['emit']
  /** Delegates work to another entry point and waits for its result. */
  trigger(entryPointId: string, input: unknown): Promise<ExecutionResult>
}

/** A handler: an async function of the input and the context. */
export type Handler<Input = any, Output = unknown> = (
  input: Input,
  ctx: HandlerContext,
) => Output | Promise<Output>

const HANDLER = Symbol.for('agentpool.handler')

/** A handler marked by {@link defineHandler}. */
export type DefinedHandler<Input = any, Output = unknown> = Handler<Input, Output> & {
  readonly [HANDLER]: true
}

/**
 * Declares a module's handler; `export default` the result. Only types the handler — no behaviour is
 * added — so a plain exported function works too.
 */
export function defineHandler<Input = any, Output = unknown>(
  fn: Handler<Input, Output>,
): DefinedHandler<Input, Output> {
  if (typeof fn !== 'function') {
    throw new TypeError(`defineHandler expects a function (input, ctx) => …, got ${typeof fn}`)
  }
  return Object.assign(fn, { [HANDLER]: true as const })
}

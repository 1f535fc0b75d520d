/**
 * The Piscina worker entry: runs the executions of one pool message on this thread.
 *
 * At load (once per thread) it claims this thread's record ring, attaches the shared state regions, joins
 * the control channel and connects the delegation channel. For each execution it loads the handler module
 * (once per thread and path), builds `ctx`, runs the handler, and reports the end as an `end` record
 * after every other record of that attempt. Records are flushed as one frame per turn of the event loop,
 * and always before the pool message returns.
 *
 * @module
 */

import { BroadcastChannel, threadId, workerData } from 'node:worker_threads'
import { assertPackable, RecordWriter } from '../src/channel/index.js'
import { connectDelegation } from '../src/delegation/index.js'
import {
  ExecutionCancelledError,
  RecordInvalidError,
  StateConflictError,
  serializeError,
} from '../src/errors.js'
import type { Handler, HandlerContext } from '../src/handler.js'
import { createExecutionRecorder, type ExecutionRecorder, type RecordSink } from '../src/outcomes/index.js'
import type {
  BatchResult,
  BatchTask,
  ControlMessage,
  EndRecord,
  ExecutionTask,
  PoolEntryPoint,
  StateChangeRecord,
  WireRecord,
} from '../src/protocol.js'
import { API_META, controlChannelName } from '../src/protocol.js'
import type { WorkerSetup } from '../src/runtime/index.js'
import {
  SharedBufferManager,
  type StateChange,
  type StateConflictInfo,
  type StateHooks,
  type StreamBuffer,
  TURN_AFTER,
} from '../src/state/index.js'
import { loadHandlerModule } from './handler-module.js'

export { setModuleImporter } from './handler-module.js'

const setup = workerData as WorkerSetup
const writer = RecordWriter.attach(setup.channel as Parameters<typeof RecordWriter.attach>[0], threadId)
const state = SharedBufferManager.attach(setup.state as Parameters<typeof SharedBufferManager.attach>[0])
const delegate = connectDelegation(setup.runtimeId)
const messageThreads = new Int32Array(setup.messageThreads!)
const entryPoints = setup.entryPoints!

/** An {@link ExecutionTask} with what its entry point fixes and its defaults filled in. */
interface Job {
  executionId: string
  streamId: string
  entryPointId: string
  correlationId: string
  attempt: number
  handler: string
  isolation: PoolEntryPoint['isolation']
  /** Some scope is `serializable`: the attempt's records wait for its commit. */
  serializable: boolean
  maxConflictRetries: number
  /** The stream's turn word (see `ConflictTurns`), and this execution's tag once it holds the turn (else 0). */
  turnSlot: number
  turnTag: number
  input: unknown
  meta: Readonly<Record<string, unknown>>
  /** The attempt's state lease: once the main thread ends it, `ctx.state` commits nothing. */
  lease: ExecutionTask['lease']
}

function jobOf(task: ExecutionTask): Job {
  const ep = entryPoints[task.entryPoint]!
  return {
    executionId: task.executionId,
    streamId: ep.id,
    entryPointId: ep.id,
    correlationId: task.correlationId ?? task.executionId,
    attempt: task.attempt,
    handler: ep.handler,
    isolation: ep.isolation,
    serializable: ep.isolation.stream === 'serializable' || ep.isolation.global === 'serializable',
    maxConflictRetries: ep.maxConflictRetries,
    turnSlot: -1,
    turnTag: 0,
    input: task.input,
    meta: task.meta ?? API_META,
    lease: task.lease,
  }
}
/** Executions running on this thread, by id. */
const running = new Map<string, ExecutionContext>()
/**
 * Aborts heard for executions not running here. One may be for an execution whose pool message still waits
 * for this thread: it must then never start. Every thread hears every abort, so only the latest are kept.
 */
const earlyAborts = new Map<string, ControlMessage['reason']>()
const EARLY_ABORTS_KEPT = 4096
/** Handler modules by path: the handler once loaded (so it starts without waiting a microtask), else its load. */
const handlers = new Map<string, Handler | Promise<Handler>>()

const control = new BroadcastChannel(controlChannelName(setup.runtimeId))
control.onmessage = (event: unknown) => {
  const message = (event as { data: ControlMessage }).data
  if (message.kind !== 'abort') return
  const ctx = running.get(message.executionId)
  if (ctx !== undefined) {
    ctx.abort(message.reason)
    return
  }
  earlyAborts.set(message.executionId, message.reason)
  if (earlyAborts.size > EARLY_ABORTS_KEPT) earlyAborts.delete(earlyAborts.keys().next().value!)
}
// The control channel must not keep an idle thread alive.
control.unref()

/**
 * Records leave as one frame per turn of the event loop. The synchronous handlers of one message run back
 * to back without yielding, though, and the turn only ends when all of them are done: an end record
 * waiting that long holds its execution (and its caller) back for nothing. So an end also flushes once
 * {@link END_FLUSH_INTERVAL_MS} have passed since the last flush.
 */
const END_FLUSH_INTERVAL_MS = 2
let flushScheduled = false
let lastFlush = performance.now()
const sink = {
  push(record: WireRecord): void {
    writer.push(record)
    if (record.k === 'end' && performance.now() - lastFlush >= END_FLUSH_INTERVAL_MS) flush()
    else scheduleFlush()
  },
}

/**
 * The sink of a `serializable` attempt: its records are checked at once (a bad one still throws at the
 * call that made it) and held until the attempt commits; a conflicting attempt's are dropped.
 */
class HeldRecords implements RecordSink {
  private records: WireRecord[] = []

  push(record: WireRecord): void {
    writer.check(record)
    this.records.push(record)
  }

  /** Sends the held records on (the attempt committed, or failed on its own). */
  release(): void {
    for (const r of this.records) sink.push(r)
    this.records = []
  }
}

/** Short jittered backoff before re-run `n` of a conflicting execution: up to 2^n ms, at most 64. */
function conflictBackoff(n: number): Promise<void> {
  const ms = Math.random() * Math.min(64, 2 ** n)
  return new Promise((resolve) => setTimeout(resolve, ms))
}

function flush(): void {
  writer.flush()
  lastFlush = performance.now()
}

function scheduleFlush(): void {
  if (flushScheduled) return
  flushScheduled = true
  setImmediate(() => {
    flushScheduled = false
    flush()
  })
}

function loadHandler(path: string): Promise<Handler> {
  let loaded = handlers.get(path)
  if (typeof loaded === 'function') return Promise.resolve(loaded)
  if (loaded === undefined) {
    loaded = loadHandlerModule(path).then((handler) => {
      handlers.set(path, handler)
      return handler
    })
    handlers.set(path, loaded)
  }
  return loaded
}

/**
 * The `ctx` of one execution. Its costlier parts — the state buffer, the decision recorder and the abort
 * signal — are made on first use, so a handler pays only for what it touches.
 */
class ExecutionContext implements HandlerContext {
  readonly executionId: string
  readonly streamId: string
  readonly entryPointId: string
  readonly correlationId: string
  readonly attempt: number
  readonly meta: Readonly<Record<string, unknown>>
  private buffer: StreamBuffer | undefined
  private recorder: ExecutionRecorder | undefined
  /** `serializable`: this attempt's records, until it commits. */
  private readonly held: HeldRecords | undefined
  /** The last conflict this attempt's state reported. */
  lastConflict: StateConflictInfo | undefined
  private controller: AbortController | undefined
  /** Set when an abort arrives before anything asked for the signal. */
  private abortReason: unknown

  constructor(private readonly task: Job) {
    this.executionId = task.executionId
    this.streamId = task.streamId
    this.entryPointId = task.entryPointId
    this.correlationId = task.correlationId
    this.attempt = task.attempt
    this.meta = task.meta
    if (task.serializable) this.held = new HeldRecords()
  }

  /** Whether the attempt has `serializable` state to commit. */
  get pendingCommit(): boolean {
    return this.buffer !== undefined && this.task.serializable
  }

  /** Whether the main thread aborted this attempt (timed out, cancelled, stopping). */
  get aborted(): boolean {
    return this.abortReason !== undefined || this.controller?.signal.aborted === true
  }

  get signal(): AbortSignal {
    if (this.controller === undefined) {
      this.controller = new AbortController()
      if (this.abortReason !== undefined) this.controller.abort(this.abortReason)
    }
    return this.controller.signal
  }

  /** Aborts `signal` (now, or when it is first asked for). */
  abort(reason: unknown): void {
    if (this.controller !== undefined) this.controller.abort(reason)
    else this.abortReason ??= reason
  }

  get state(): StreamBuffer {
    this.buffer ??= state.createBuffer(
      this.executionId,
      this.streamId,
      this.task.isolation,
      new RecordingHooks(this.task, this),
      this.task.lease,
    )
    return this.buffer
  }

  private records(): ExecutionRecorder {
    this.recorder ??= createExecutionRecorder(this.held ?? sink, this)
    return this.recorder
  }

  // Bound on first use, so a handler may call them detached (`const { decide } = ctx`), and an execution
  // that never records or delegates makes none of the six functions.
  private boundDecide: HandlerContext['decide'] | undefined
  private boundRecordOutcome: HandlerContext['recordOutcome'] | undefined
  private boundReportProblem: HandlerContext['reportProblem'] | undefined
  private boundViolateConstraint: HandlerContext['violateConstraint'] | undefined
  private boundEmit: HandlerContext['emit'] | undefined
  private boundTrigger: HandlerContext['trigger'] | undefined

  get decide(): HandlerContext['decide'] {
    this.boundDecide ??= (decision) => this.records().decide(decision)
    return this.boundDecide
  }

  get recordOutcome(): HandlerContext['recordOutcome'] {
    this.boundRecordOutcome ??= (id, outcome) => this.records().recordOutcome(id, outcome)
    return this.boundRecordOutcome
  }

  get reportProblem(): HandlerContext['reportProblem'] {
    this.boundReportProblem ??= (severity, description, options) =>
      this.records().reportProblem(severity, description, options)
    return this.boundReportProblem
  }

  get violateConstraint(): HandlerContext['violateConstraint'] {
    this.boundViolateConstraint ??= (id, details) => this.records().violateConstraint(id, details)
    return this.boundViolateConstraint
  }

  get emit(): HandlerContext['emit'] {
    this.boundEmit ??= (type, data) => this.records().emit(type, data)
    return this.boundEmit
  }

  get trigger(): HandlerContext['trigger'] {
    this.boundTrigger ??= (entryPointId, input) =>
      delegate(
        entryPointId,
        input,
        { executionId: this.executionId, correlationId: this.correlationId },
        this.signal,
      )
    return this.boundTrigger
  }

  /**
   * Ends the attempt's state: commits the private writes of its `serializable` scopes if it completed (a
   * full region or a bad increment fails it instead), drops them if it failed or was aborted. Returns
   * 'conflict' when the attempt must re-run (what it read changed), else 'done' (and the error, if the
   * commit failed). Its held records are sent on only when it does not re-run.
   */
  settle(ok: boolean): { rerun: boolean; error?: unknown } {
    const b = this.buffer
    let rerun = false
    let error: unknown
    if (b !== undefined && this.task.serializable) {
      if (ok && !this.aborted) {
        try {
          rerun = !b.commit()
        } catch (err) {
          error = err
        }
      } else {
        rerun = !b.abandon() && !this.aborted
      }
    }
    if (!rerun) this.held?.release()
    return { rerun, error }
  }

  /**
   * After the end: late calls (from timers the handler left behind) are refused — `ctx.state` writes with
   * `ExecutionEndedError` — and the execution scope is freed.
   */
  close(): void {
    this.recorder?.close()
    if (this.buffer !== undefined) state.releaseBuffer(this.buffer)
  }
}

/**
 * An execution's state hooks: forward committed changes and refused synchronized writes as records. One
 * object with methods (not closures), made with the execution's state buffer.
 */
class RecordingHooks implements StateHooks {
  constructor(
    private readonly task: Job,
    private readonly ctx: ExecutionContext,
  ) {}

  /** State hook: forwards a committed change as a record. */
  onChange(change: StateChange): void {
    const record: StateChangeRecord = {
      k: 'state_change',
      executionId: this.task.executionId,
      streamId: this.task.streamId,
      attempt: this.task.attempt,
      key: change.key,
      scope: change.scope,
      old: change.old,
      new: change.new,
      timestamp: change.timestamp,
      version: change.version,
      oldBytes: change.oldBytes,
      newBytes: change.newBytes,
    }
    // Only when a value was left out: every field travels, and is decoded, for each change.
    if (change.truncated === true) record.truncated = true
    sink.push(record)
  }

  /** State hook: remembers a refused synchronized write or conflicting attempt, and forwards it as a record. */
  onConflict(info: StateConflictInfo): void {
    this.ctx.lastConflict = info
    sink.push({
      k: 'state_conflict',
      executionId: this.task.executionId,
      streamId: this.task.streamId,
      attempt: this.task.attempt,
      key: info.key,
      scope: info.scope,
      level: info.level,
      timestamp: Date.now(),
    })
  }
}

/**
 * Runs one execution of a pool message: undefined when it ended synchronously (a loaded, synchronous
 * handler outside `serializable` state, the common case: no promise is made for it), else the promise of
 * its end.
 */
function runOne(task: Job, largeOutputs: Record<string, unknown>): Promise<void> | undefined {
  if (endedEarly(task, largeOutputs)) return undefined
  const startedAt = Date.now()
  if (task.serializable) return runSerializable(task, startedAt, largeOutputs)
  // Without serializable state an attempt never re-runs: it ends once, here or when its promise settles.
  const attempt = runAttempt(task)
  if (!isThenable(attempt)) {
    finishRun(task, attempt, startedAt, 0, largeOutputs)
    return undefined
  }
  return attempt.then((a) => finishRun(task, a, startedAt, 0, largeOutputs))
}

/** Ends an execution aborted on the main thread before it started here (never runs it); true if so. */
function endedEarly(task: Job, largeOutputs: Record<string, unknown>): boolean {
  const aborted = earlyAborts.get(task.executionId)
  if (aborted !== undefined) {
    // Already final on the main thread (timed out or cancelled while its message waited): never run it.
    earlyAborts.delete(task.executionId)
    const reason = `aborted (${aborted}) before it started on its thread`
    const now = Date.now()
    pushEnd(
      {
        k: 'end',
        executionId: task.executionId,
        streamId: task.streamId,
        attempt: task.attempt,
        ok: false,
        startedAt: now,
        completedAt: now,
        error: serializeError(new ExecutionCancelledError(task.executionId, reason)),
      },
      largeOutputs,
    )
    return true
  }
  return false
}

/** An execution with `serializable` state: attempts until one commits, holding its stream's turn if it must. */
async function runSerializable(
  task: Job,
  startedAt: number,
  largeOutputs: Record<string, unknown>,
): Promise<void> {
  task.turnSlot = state.turns.slot(task.streamId)
  try {
    await runUntilCommitted(task, startedAt, largeOutputs)
  } finally {
    if (task.turnTag !== 0) state.turns.release(task.turnSlot, task.turnTag)
  }
}

/** Runs attempts until one does not conflict (or the re-runs run out). */
async function runUntilCommitted(
  task: Job,
  startedAt: number,
  largeOutputs: Record<string, unknown>,
): Promise<void> {
  let conflicts = 0
  for (;;) {
    let attempt = runAttempt(task)
    if (isThenable(attempt)) attempt = await attempt
    if (!attempt.rerun) {
      finishRun(task, attempt, startedAt, conflicts, largeOutputs)
      return
    }
    conflicts++
    if (conflicts > task.maxConflictRetries) {
      const error = serializeError(
        new StateConflictError(attempt.conflict?.key ?? '', attempt.conflict?.scope ?? 'stream', {
          executionId: task.executionId,
          maxConflictRetries: task.maxConflictRetries,
        }),
      )
      error.message = `${error.message} — gave up after ${task.maxConflictRetries} re-runs (maxConflictRetries)`
      finishRun(task, { ok: false, output: undefined, error }, startedAt, conflicts - 1, largeOutputs)
      return
    }
    if (conflicts >= TURN_AFTER && task.turnTag === 0) {
      // Kept losing: take the stream's turn, so the commits of others wait for this run (see ConflictTurns).
      const tag = state.turns.tag()
      await state.turns.take(task.turnSlot, tag)
      task.turnTag = tag
    } else {
      await conflictBackoff(conflicts)
    }
    const aborted = earlyAborts.get(task.executionId)
    if (aborted !== undefined) {
      // Final on the main thread meanwhile: the end changes nothing there, it only releases the message.
      earlyAborts.delete(task.executionId)
      const error = serializeError(new ExecutionCancelledError(task.executionId, `aborted (${aborted})`))
      finishRun(task, { ok: false, output: undefined, error }, startedAt, conflicts, largeOutputs)
      return
    }
  }
}

interface AttemptEnd {
  ok: boolean
  output: unknown
  error: EndRecord['error']
  rerun?: boolean
  /** The attempt's last conflict, if any. */
  conflict?: StateConflictInfo
}

/**
 * Runs the handler once; under `serializable` also commits (or drops) the attempt's state and records. A
 * loaded, synchronous handler runs and ends without yielding: its end record is pushed before the next
 * execution of the message starts, and can leave at once (see END_FLUSH_INTERVAL_MS).
 */
function runAttempt(task: Job): AttemptEnd | Promise<AttemptEnd> {
  const ctx = new ExecutionContext(task)
  running.set(task.executionId, ctx)
  const known = handlers.get(task.handler)
  if (typeof known === 'function') return callHandler(known, task, ctx)
  return loadHandler(task.handler).then(
    (handler) => callHandler(handler, task, ctx),
    (err: unknown) => endAttempt(task, ctx, false, undefined, err),
  )
}

function callHandler(handler: Handler, task: Job, ctx: ExecutionContext): AttemptEnd | Promise<AttemptEnd> {
  let output: unknown
  try {
    output = handler(task.input, ctx)
  } catch (err) {
    return endAttempt(task, ctx, false, undefined, err)
  }
  if (!isThenable(output)) return endAttempt(task, ctx, true, output)
  return Promise.resolve(output).then(
    (value) => endAttempt(task, ctx, true, value),
    (err: unknown) => endAttempt(task, ctx, false, undefined, err),
  )
}

function endAttempt(
  task: Job,
  ctx: ExecutionContext,
  ok: boolean,
  output: unknown,
  thrown?: unknown,
): AttemptEnd | Promise<AttemptEnd> {
  // Another execution of this stream holds the turn: commit after it.
  if (ok && ctx.pendingCommit && state.turns.heldByOther(task.turnSlot, task.turnTag)) {
    return state.turns
      .waitFree(task.turnSlot, task.turnTag)
      .then(() => settleAttempt(task, ctx, ok, output, thrown))
  }
  return settleAttempt(task, ctx, ok, output, thrown)
}

function settleAttempt(
  task: Job,
  ctx: ExecutionContext,
  ok: boolean,
  output: unknown,
  thrown?: unknown,
): AttemptEnd {
  let error: EndRecord['error']
  if (!ok) {
    error = serializeError(thrown)
    error.code ??= 'AGENTPOOL_HANDLER_FAILED'
  }
  try {
    const settled = ctx.settle(ok)
    if (settled.error !== undefined) {
      ok = false
      output = undefined
      error = serializeError(settled.error)
    }
    return { ok, output, error, rerun: settled.rerun, conflict: ctx.lastConflict }
  } finally {
    ctx.close()
    running.delete(task.executionId)
  }
}

function finishRun(
  task: Job,
  a: AttemptEnd,
  startedAt: number,
  conflicts: number,
  largeOutputs: Record<string, unknown>,
): void {
  const end: EndRecord = {
    k: 'end',
    executionId: task.executionId,
    streamId: task.streamId,
    attempt: task.attempt,
    ok: a.ok,
    startedAt,
    completedAt: Date.now(),
  }
  if (a.ok) end.output = a.output
  else end.error = a.error
  if (conflicts > 0) end.conflicts = conflicts
  endedSinceReply++
  pushEnd(end, largeOutputs)
  // A committed serializable attempt's end leaves at once, in the same synchronous step as its commit: a
  // crash elsewhere on this thread cannot fall between them and make the execution re-run.
  if (task.serializable) flush()
}

/** Pushes an end record; an output too large for the ring travels in the pool message's result instead. */
function pushEnd(end: EndRecord, largeOutputs: Record<string, unknown>): void {
  try {
    if (end.ok) assertPackable(end.output, 'the handler output')
    sink.push(end)
  } catch (err) {
    if (end.ok && err instanceof RecordInvalidError && err.details?.tooLarge === true) {
      largeOutputs[end.executionId] = end.output
      sink.push({ ...end, output: undefined, largeOutput: true })
      return
    }
    // The end itself cannot be encoded: the attempt fails with the reason, not silently.
    sink.push({ ...end, ok: false, output: undefined, error: serializeError(err) })
  }
}

/** Busy time of this thread and executions ended on it since its previous reply (see {@link BatchResult}). */
let lastLoop = performance.eventLoopUtilization()
let endedSinceReply = 0

function busySinceLastReply(): BatchResult {
  const now = performance.eventLoopUtilization()
  const busyUs = Math.round(performance.eventLoopUtilization(now, lastLoop).active * 1000)
  lastLoop = now
  const result: BatchResult = { busyUs, ended: endedSinceReply }
  endedSinceReply = 0
  return result
}

/** Runs every execution of one pool message concurrently; resolves when all have ended. */
export default async function run(task: BatchTask): Promise<BatchResult> {
  // Release: tells the main thread which thread to terminate if this message must be stopped.
  if (task.slot !== undefined && task.slot >= 0) Atomics.store(messageThreads, task.slot, threadId + 1)
  if (task.warmup !== undefined) {
    // The runtime refuses to start with a module that does not load; the reasons go back to it.
    const loads = await Promise.allSettled(task.warmup.map(loadHandler))
    const failures: Record<string, string> = {}
    loads.forEach((load, i) => {
      if (load.status === 'rejected') failures[task.warmup![i]!] = (load.reason as Error).message
    })
    for (const _ in failures) return { handlerFailures: failures }
    return {}
  }
  const largeOutputs: Record<string, unknown> = {}
  // The executions start one after another; only those that did not end at once are waited for.
  let pending: Promise<void>[] | undefined
  for (const t of task.executions) {
    let running: Promise<void> | undefined
    try {
      running = runOne(jobOf(t), largeOutputs)
    } catch (err) {
      // As from an async function: the message fails, and the rest of its executions still run.
      running = Promise.reject(err)
    }
    if (running === undefined) continue
    pending ??= []
    pending.push(running)
  }
  if (pending !== undefined) await Promise.all(pending)
  // Every end must be in shared memory before the pool message returns.
  flush()
  const result = busySinceLastReply()
  for (const _ in largeOutputs) {
    result.largeOutputs = largeOutputs
    break
  }
  return result
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (
    (typeof value === 'object' || typeof value === 'function') &&
    value !== null &&
    typeof (value as { then?: unknown }).then === 'function'
  )
}

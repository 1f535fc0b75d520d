/**
 * The runtime engine behind {@link AgentRuntime}: ties admission, dispatch, crash triage and the result
 * store together and decides how every execution ends. Main thread only; nothing here blocks.
 *
 * Ends. A worker reports each attempt's end as an `end` record on its record ring, after every other record
 * of that attempt, so by the time the engine settles an execution it has consumed all its records. A pool
 * message that resolves only confirms; one that rejects means its thread died (see `crash-triage.ts`).
 *
 * Timeouts and cancellation. The result is final at once (`timed_out` / `cancelled`); the handler's
 * `ctx.signal` aborts and, past the grace period, its thread is replaced (see `dispatch.ts`); the other
 * messages that thread was running are re-run.
 *
 * @module
 */
import { encodedBytes, type FrameSource } from '../channel/index.js'
import type { ResolvedRuntimeConfig } from '../config/index.js'
import {
  type AgentPoolError,
  ErrorCode,
  ExecutionCancelledError,
  ExecutionTimeoutError,
  StateLockBudgetError,
  serializeError,
  WorkerCrashedError,
} from '../errors.js'
import type { EventBus, EventData } from '../events/index.js'
import type { BatchResult, EndOp, EndRecord, Recovery, WireRecord } from '../protocol.js'
import { type Lease, ownerThread } from '../state/index.js'
import { Admission, type Journal } from './admission.js'
import { judgeThreadExit, triageUnfinished } from './crash-triage.js'
import { type Batch, Dispatcher } from './dispatch.js'
import type { Execution, ExecutionStream } from './execution-stream.js'
import { LockWatchdog } from './lock-watchdog.js'
import { buildResult, type EndError, ResultStore } from './result-store.js'
import type { RunAs } from './sources.js'
import { Timeouts } from './timeouts.js'
import type { ExecutionResult, ExecutionStatus, RuntimeStats, StopOptions, TriggerOptions } from './types.js'
import type { WorkerPool } from './worker-pool.js'

/**
 * Largest output (msgpack bytes) an `execution_completed` event carries; a larger one is flagged. An output
 * whose end record came through the record channel in at most this many bytes counts as small as it is.
 */
export const MAX_EVENT_OUTPUT_BYTES = 16 * 1024

/** Backoff before retry n: BASE × 2^(n−1), at most MAX. */
const RETRY_BASE_MS = 10
const RETRY_MAX_MS = 1000

/** What the engine needs from the state layer (kept narrow so the engine knows nothing of its insides). */
export interface StateCleanup {
  openLease(): Lease
  endLease(lease: Lease, executionId: string): void
  releaseLease(lease: Lease, executionId: string): void
  lockWord(): number
  /** Milliseconds the main thread has spent spinning for the commit lock, in all. */
  lockSpunMs(): number
  leaseHolds(lease: Lease, ownerWord: number): boolean
  threadExited(threadId: number): void
}

export interface EngineHooks {
  /** Records other than `end`: `records[from, to)`, in ring order, decoded from `source`'s frame if given. */
  onRecords(records: WireRecord[], source: FrameSource | undefined, from: number, to: number): void
  /** Drains the record channel now. */
  drainRecords(): void
  /** With durability: receives every admission, attempt start and end, in order. */
  journal?: Journal
}

export class RuntimeEngine {
  private readonly admission: Admission
  private readonly dispatcher: Dispatcher
  private readonly executions = new Map<string, Execution>()
  private readonly results = new ResultStore()
  private readonly timeouts = new Timeouts<Execution>((e) => this.onTimeout(e))
  private readonly watchdog: LockWatchdog
  private pool: WorkerPool | undefined
  private idleWaiters: (() => void)[] = []
  /** Executions admitted and not yet final. */
  private active = 0
  /**
   * Set by a stop without drain under durability: the executions it cancels are not journalled as
   * ended, so the next start runs them again.
   */
  private handingOver = false

  constructor(
    private readonly config: ResolvedRuntimeConfig,
    readonly runtimeId: string,
    private readonly bus: EventBus,
    private readonly state: StateCleanup,
    private readonly hooks: EngineHooks,
  ) {
    this.admission = new Admission(config, hooks.journal)
    const { threads, tasksPerThread } = config.pool
    this.dispatcher = new Dispatcher(runtimeId, threads, tasksPerThread, this.admission.streamOrder, {
      onStart: (e) => this.onStart(e),
      onSettled: (batch, err, result) => this.onSettled(batch, err, result),
    })
    this.watchdog = new LockWatchdog(
      () => this.state.lockWord(),
      config.state.lockBudgetMs,
      (word) => this.onLockOverrun(word),
      () => this.state.lockSpunMs(),
    )
  }

  get streams(): ReadonlyMap<string, ExecutionStream> {
    return this.admission.streams
  }

  attach(pool: WorkerPool): void {
    this.pool = pool
    this.dispatcher.attach(pool)
    this.admission.accepting = true
    this.watchdog.start()
  }

  /** Admits one execution; returns its id, or the remembered id for a repeated idempotency key. */
  admit(
    entryPointId: string,
    input: unknown,
    opts: TriggerOptions = {},
    depth = 0,
    delegated = false,
    runAs?: RunAs,
  ): string {
    const e = this.admission.admit(entryPointId, input, opts, depth, delegated, runAs)
    if (typeof e === 'string') return e
    this.executions.set(e.id, e)
    this.active++
    if (e.signal !== undefined) this.watchSignal(e, e.signal)
    if (e.phase !== 'done') {
      e.stream.enqueue(e)
      // A cluster job arrives alone in its I/O callback: gather those of the phase into shared messages.
      if (runAs === undefined) this.dispatcher.schedule()
      else this.dispatcher.scheduleCoalesced()
    }
    return e.id
  }

  /** Resolves when the execution is final (at once if it already is). */
  wait(executionId: string): Promise<ExecutionResult> | undefined {
    // A live execution first: a cluster job's next attempt runs under the id of the attempt that ended.
    const e = this.executions.get(executionId)
    if (e === undefined) {
      const done = this.results.get(executionId)
      return done === undefined ? undefined : Promise.resolve(done)
    }
    if (e.promise === undefined) {
      e.promise = new Promise((resolve) => {
        e.settle = resolve
      })
    }
    return e.promise
  }

  /**
   * Queues the executions a run log had admitted and not ended, in their admission order and ahead of
   * any new work, and remembers its idempotency keys. Call after {@link attach}, before triggers start.
   */
  recover(recovery: Pick<Recovery, 'unfinished' | 'idempotency'>): void {
    for (const k of recovery.idempotency) this.admission.restoreKey(k.key, k.executionId, k.expiresAt)
    for (const run of recovery.unfinished) {
      const e = this.admission.readmit(run)
      if (e === undefined) {
        this.hooks.journal?.({
          op: 'end',
          id: run.id,
          status: 'failed',
          attempts: run.attempts,
          error: {
            code: ErrorCode.UNKNOWN_ENTRY_POINT,
            message: `entry point ${JSON.stringify(run.entryPointId)} is no longer configured; the run was not recovered`,
          },
          startedAt: run.startedAt || run.admittedAt,
          completedAt: Date.now(),
        })
        continue
      }
      this.executions.set(e.id, e)
      this.active++
      this.bus.publish({
        type: 'execution_recovered',
        streamId: e.stream.id,
        executionId: e.id,
        correlationId: e.correlationId,
        data: { entryPointId: e.stream.id, attempt: e.attempt },
      })
      e.stream.enqueue(e)
    }
    this.dispatcher.schedule()
  }

  /**
   * Whether many executions run on the pool (at least two per thread): their records will keep coming, so
   * the record channel may poll for them rather than have each thread wake the main thread.
   */
  busy(): boolean {
    let running = 0
    for (const s of this.admission.streamOrder) running += s.running
    return running >= 2 * (this.pool?.threads ?? 1)
  }

  /** Executions admitted and not yet final (queued, running or waiting to re-run). */
  get unfinished(): number {
    return this.active
  }

  /** Depth of a live execution in an event cascade; 0 if unknown. */
  depthOf(executionId: string): number {
    return this.executions.get(executionId)?.depth ?? 0
  }

  stats(): RuntimeStats {
    const streams: RuntimeStats['streams'] = {}
    for (const s of this.admission.streams.values()) streams[s.id] = s.stats()
    return {
      running: this.admission.accepting,
      streams,
      pool: {
        threads: this.pool?.threads ?? 0,
        tasksPerThread: this.config.pool.tasksPerThread,
        utilization: this.pool?.utilization ?? 0,
        messagesInFlight: this.dispatcher.messagesInFlight,
        threadsReplaced: this.pool?.threadsReplaced ?? 0,
      },
    }
  }

  /** A pool thread is gone; called after its records were drained and before its messages reject. */
  threadExited(threadId: number): void {
    judgeThreadExit(this.dispatcher.batchesOn(threadId))
  }

  /**
   * Takes the end records out of a decoded frame and hands the rest on. The rest go first, in order, and
   * a failure while routing them (a throwing subscriber is caught by the bus; this is for bugs) never
   * costs an end: an end that is never consumed would leave its execution waiting forever.
   */
  consume(records: WireRecord[], source?: FrameSource): void {
    let from = 0
    for (let i = 0; i < records.length; i++) {
      const r = records[i]!
      // msgpackr can mis-encode a value it was handed (an own non-function `hasOwnProperty` plus inherited
      // enumerable keys): the frame then decodes into stray values. They are dropped, never routed.
      const valid =
        typeof r === 'object' && r !== null && typeof r.k === 'string' && typeof r.executionId === 'string'
      if (valid && r.k !== 'end') continue
      if (i > from) this.route(records, source, from, i)
      from = i + 1
      if (valid) this.onEnd(r as EndRecord, source?.bytesOf(i))
    }
    if (records.length > from) this.route(records, source, from, records.length)
  }

  private route(records: WireRecord[], source: FrameSource | undefined, from: number, to: number): void {
    try {
      this.hooks.onRecords(records, source, from, to)
    } catch (err) {
      process.emitWarning(err instanceof Error ? err : String(err), 'AgentPoolRecords')
    }
  }

  /** Stops admitting; with drain, waits for every admitted execution, else cancels them. */
  async stop(opts: StopOptions): Promise<void> {
    this.admission.accepting = false
    if (opts.drain === false) {
      this.handingOver = true
      for (const s of this.admission.streams.values()) {
        for (const e of s.takeAll())
          this.finish(e, 'cancelled', new ExecutionCancelledError(e.id, 'the runtime stopped'))
      }
      for (const e of [...this.executions.values()]) {
        if (e.phase === 'running' || e.phase === 'backoff') {
          this.finish(e, 'cancelled', new ExecutionCancelledError(e.id, 'the runtime stopped'))
        }
      }
      // Nothing admitted is left to finish: stop the threads now rather than after the grace period.
      this.dispatcher.killAll()
    }
    if (this.active > 0 || this.dispatcher.messagesInFlight > 0) {
      await new Promise<void>((resolve) => this.idleWaiters.push(resolve))
    }
    this.hooks.drainRecords()
    this.timeouts.clear()
    this.watchdog.stop()
    this.dispatcher.close()
  }

  private onStart(e: Execution): void {
    e.lease = this.state.openLease()
    if (e.timeoutMs > 0) e.deadline = this.timeouts.add(e, e.timeoutMs)
    this.hooks.journal?.({ op: 'start', id: e.id, attempt: e.attempt, startedAt: e.startedAt })
    // publishRecord: no checks (the engine's events are well formed) and no id string while nobody listens.
    this.bus.publishRecord(
      'execution_started',
      e.stream.id,
      e.id,
      e.correlationId,
      { entryPointId: e.stream.id, attempt: e.attempt },
      Date.now(),
    )
  }

  private onSettled(batch: Batch, err: unknown, result: BatchResult | undefined): void {
    // Every record the thread published is in shared memory now, even if the thread is gone.
    this.hooks.drainRecords()
    for (const end of batch.largeEnds) {
      if (result?.largeOutputs !== undefined && end.executionId in result.largeOutputs) {
        this.onEnd({ ...end, largeOutput: false, output: result.largeOutputs[end.executionId] })
      } else {
        this.onEnd({
          ...end,
          ok: false,
          largeOutput: false,
          error: serializeError(
            new WorkerCrashedError(`the thread died before returning the output of ${end.executionId}`),
          ),
        })
      }
    }
    this.dispatcher.forget(batch)
    for (const e of batch.executions) {
      if (batch.ended.has(e.id) || e.phase !== 'running') continue
      // Still running after its message ended: its thread died (or the message was aborted) before its end.
      this.endLease(e)
      this.clearTimer(e)
      e.stream.running--
      const crash = triageUnfinished(batch, e, err)
      if (crash === undefined) e.stream.enqueue(e)
      else this.failAttempt(e, crash)
    }
    // The message's thread is done with its leases (it finished them, or it is gone).
    batch.leases.forEach((lease, i) => {
      if (lease !== undefined) this.state.releaseLease(lease, batch.executions[i]!.id)
    })
    this.dispatcher.schedule()
    this.checkIdle()
  }

  /** `bytes`: the end record's encoded size, when it came through the record channel. */
  private onEnd(r: EndRecord, bytes?: number): void {
    if (!this.dispatcher.noteEnd(r)) return
    const e = this.executions.get(r.executionId)
    // An end for an attempt that is no longer current (timed out, cancelled, or re-run) changes nothing.
    if (e === undefined || e.phase !== 'running' || e.attempt !== r.attempt) return
    this.endLease(e)
    if (r.conflicts !== undefined) {
      e.conflicts += r.conflicts
      e.stream.conflicts += r.conflicts
    }
    e.stream.running--
    this.clearTimer(e)
    if (r.ok) {
      // An end that small holds a small output: the event needs no encoding to know (see completedData).
      const smallEnd = bytes !== undefined && bytes <= MAX_EVENT_OUTPUT_BYTES
      this.finish(e, 'completed', undefined, r.output, r.completedAt, smallEnd)
    } else {
      const error = r.error!
      this.failAttempt(e, error as unknown as AgentPoolError)
    }
    this.dispatcher.schedule()
  }

  /** A failed attempt: retry if allowed, else the execution fails. */
  private failAttempt(e: Execution, error: EndError): void {
    if (e.attempt <= e.maxRetries) {
      e.stream.retried++
      this.bus.publish({
        type: 'execution_retried',
        streamId: e.stream.id,
        executionId: e.id,
        correlationId: e.correlationId,
        data: {
          attempt: e.attempt,
          error: { code: error.code ?? ErrorCode.HANDLER_FAILED, message: error.message },
        },
      })
      const delay = Math.min(RETRY_MAX_MS, RETRY_BASE_MS * 2 ** (e.attempt - 1))
      e.attempt++
      e.phase = 'backoff'
      e.timer = setTimeout(() => {
        e.timer = undefined
        if (e.phase !== 'backoff') return
        e.stream.enqueue(e)
        this.dispatcher.schedule()
      }, delay)
      return
    }
    this.finish(e, 'failed', error)
  }

  /**
   * The commit lock has been held past `state.lockBudgetMs` by one holding (`word`): every other commit is
   * waiting. Its thread is stopped (the main thread then recovers the lock and rolls the commit back, see
   * `threadExited`). The execution whose lease was admitted with that holding fails with
   * `AGENTPOOL_STATE_LOCK_BUDGET` (or retries, within `maxRetries`); the others on that thread re-run. When
   * no lease names the holder, the thread's death is judged like a crash.
   */
  private onLockOverrun(word: number): void {
    const threadId = ownerThread(word)
    if (threadId <= 0 || this.pool === undefined) return
    let culprit: Execution | undefined
    for (const batch of this.dispatcher.batchesOn(threadId)) {
      batch.leases.forEach((lease, i) => {
        if (lease !== undefined && this.state.leaseHolds(lease, word)) culprit = batch.executions[i]
      })
    }
    if (culprit === undefined) {
      this.pool.terminateThread(threadId)
      return
    }
    this.dispatcher.stopThread(threadId)
    const e = culprit
    if (e.phase !== 'running' || e.lease === undefined || !this.state.leaseHolds(e.lease, word)) return
    this.dispatcher.markEnded(e.id)
    e.stream.running--
    this.clearTimer(e)
    this.endLease(e)
    this.failAttempt(e, new StateLockBudgetError(e.id, this.config.state.lockBudgetMs))
    this.dispatcher.schedule()
  }

  private onTimeout(e: Execution): void {
    e.deadline = undefined
    if (e.phase !== 'running') return
    this.finish(e, 'timed_out', new ExecutionTimeoutError(e.id, e.timeoutMs))
  }

  private watchSignal(e: Execution, signal: AbortSignal): void {
    const onAbort = () => this.cancel(e)
    if (signal.aborted) {
      this.finish(
        e,
        'cancelled',
        new ExecutionCancelledError(e.id, 'its signal was aborted before it started'),
      )
      return
    }
    signal.addEventListener('abort', onAbort, { once: true })
    e.detachSignal = () => signal.removeEventListener('abort', onAbort)
  }

  private cancel(e: Execution): void {
    if (e.phase === 'done') return
    if (e.phase === 'queued') e.stream.remove(e)
    this.finish(e, 'cancelled', new ExecutionCancelledError(e.id, 'its signal was aborted'))
  }

  /**
   * Makes the result final. A running attempt is told to abort and, if its message outlives the grace
   * period, the message (and its thread) is killed.
   */
  private finish(
    e: Execution,
    status: ExecutionStatus,
    error?: EndError,
    output?: unknown,
    completedAt = Date.now(),
    /** The end record arrived in at most MAX_EVENT_OUTPUT_BYTES (see completedData). */
    smallEnd = false,
  ): void {
    if (e.phase === 'done') return
    const wasRunning = e.phase === 'running'
    // However the attempt ends, nothing of it is written from now on (and its execution scope is freed).
    if (wasRunning) this.endLease(e)
    if (wasRunning && status !== 'completed' && status !== 'failed') {
      e.stream.running--
      const reason = status === 'timed_out' ? 'timeout' : this.admission.accepting ? 'cancelled' : 'stopping'
      this.dispatcher.abortRunning(e, reason)
    }
    e.phase = 'done'
    this.clearTimer(e)
    e.detachSignal?.()
    const result = buildResult(e, status, error, output, completedAt)
    this.active--
    if (this.hooks.journal !== undefined && !this.handingOver) this.hooks.journal(endOp(result))
    e.stream.record(result)
    this.results.remember(result)
    // Still known while its end is published: event triggers ask for its cascade depth.
    this.publishEnd(e, result, smallEnd)
    this.executions.delete(e.id)
    e.settle?.(result)
    this.checkIdle()
  }

  private publishEnd(e: Execution, r: ExecutionResult, smallEnd: boolean): void {
    if (r.status === 'completed') {
      this.bus.publishRecord(
        'execution_completed',
        e.stream.id,
        e.id,
        e.correlationId,
        completedData(e.attempt, r, smallEnd),
        Date.now(),
      )
    } else {
      this.bus.publish({
        type: 'execution_failed',
        streamId: e.stream.id,
        executionId: e.id,
        correlationId: e.correlationId,
        data: { attempt: e.attempt, status: r.status as 'failed', error: r.error!, durationMs: r.durationMs },
      })
    }
  }

  /** The running attempt is over for the main thread: its state lease ends (see `StateCleanup.endLease`). */
  private endLease(e: Execution): void {
    if (e.lease === undefined) return
    this.state.endLease(e.lease, e.id)
    e.lease = undefined
  }

  private clearTimer(e: Execution): void {
    if (e.deadline !== undefined) {
      this.timeouts.remove(e.deadline)
      e.deadline = undefined
    }
    if (e.timer !== undefined) {
      clearTimeout(e.timer)
      e.timer = undefined
    }
  }

  private checkIdle(): void {
    if (this.active > 0 || this.dispatcher.messagesInFlight > 0 || this.idleWaiters.length === 0) return
    const waiters = this.idleWaiters
    this.idleWaiters = []
    for (const w of waiters) w()
  }
}

/** The data of `execution_completed`: the output when it is small (see {@link MAX_EVENT_OUTPUT_BYTES}). */
function completedData(
  attempt: number,
  r: ExecutionResult,
  smallEnd: boolean,
): EventData<'execution_completed'> {
  const data: EventData<'execution_completed'> = { attempt, durationMs: r.durationMs }
  const out = r.output
  if (out === undefined) return data
  // Small without encoding it again: numbers, booleans, null and short strings by construction; any output
  // whose whole end record arrived in at most that many bytes (its encoding there, with the thread's
  // shared record structures, may be a little smaller than on its own).
  const small =
    smallEnd ||
    (typeof out !== 'object' || out === null
      ? typeof out !== 'string' || out.length * 3 <= MAX_EVENT_OUTPUT_BYTES
      : false)
  const bytes = small ? 0 : encodedBytes(out)
  if (small || (bytes >= 0 && bytes <= MAX_EVENT_OUTPUT_BYTES)) data.output = out
  else data.outputBytes = bytes
  return data
}

/** The run log's record of a final result. */
function endOp(r: ExecutionResult): EndOp {
  const op: EndOp = {
    op: 'end',
    id: r.executionId,
    status: r.status,
    attempts: r.attempts,
    startedAt: r.startedAt,
    completedAt: r.completedAt,
  }
  if (r.conflicts > 0) op.conflicts = r.conflicts
  if (r.output !== undefined) op.output = r.output
  if (r.error !== undefined) op.error = r.error
  return op
}

/**
 * The runtime engine behind {@link AgentRuntime}: admission, dispatch to the pool, and the end of every
 * execution. Main thread only; nothing here blocks.
 *
 * Dispatch. Executions are carried to threads in pool messages of one or more executions. When queues are
 * shallow each message carries one; when they are deep, the executions that may start are spread over
 * the free message slots (`threads × tasksPerThread`), up to {@link MAX_BATCH} per message, which hides
 * the per-message cost. Each execution keeps its own result, timeout and error.
 *
 * Ends. A worker reports each attempt's end as an `end` record on its record ring, after every other record
 * of that attempt, so by the time the engine settles an execution it has consumed all its records. A pool
 * message that resolves only confirms; one that rejects means its thread died: whatever ended before the
 * death was already reported. When exactly one execution was unfinished on the dead thread, it is the
 * culprit and fails with `AGENTPOOL_WORKER_CRASHED` (or retries, within `maxRetries`). A thread runs
 * several messages at once, though, so when several were unfinished each is a suspect and re-runs alone on
 * a thread (`solo`): the culprit kills its thread again, alone, and is named; the innocent complete. An
 * execution whose handler had started counts the lost run as an attempt (its records carry that attempt).
 *
 * Timeouts and cancellation. The result is final at once (`timed_out` / `cancelled`), the handler's
 * `ctx.signal` aborts through the control channel, and if its pool message has not finished
 * {@link ABORT_GRACE_MS} later its thread is terminated (and replaced); the other messages that thread
 * was running are re-run.
 *
 * @module
 */
import { randomUUID } from 'node:crypto'
import { BroadcastChannel } from 'node:worker_threads'
import type { FrameSource } from '../channel/index.js'
import type { ResolvedRuntimeConfig } from '../config/index.js'
import {
  type AgentPoolError,
  ErrorCode,
  ExecutionCancelledError,
  ExecutionTimeoutError,
  NotRunningError,
  QueueFullError,
  serializeError,
  UnknownEntryPointError,
  WorkerCrashedError,
} from '../errors.js'
import type { EventBus } from '../events/index.js'
import type { BatchResult, ControlMessage, EndRecord, ExecutionTask, WireRecord } from '../protocol.js'
import { API_META, controlChannelName } from '../protocol.js'
import { type Execution, ExecutionStream, newExecution } from './execution-stream.js'
import { IdempotencyCache } from './idempotency-cache.js'
import type { ExecutionResult, ExecutionStatus, RuntimeStats, StopOptions, TriggerOptions } from './types.js'
import type { WorkerPool } from './worker-pool.js'

/** Most executions carried by one pool message. */
export const MAX_BATCH = 64
/** Pool messages per thread beyond `tasksPerThread`, kept for delegated executions. */
export const DELEGATION_HEADROOM = 16
/** How long a timed-out or cancelled handler may keep its thread before the thread is replaced. */
export const ABORT_GRACE_MS = 1000
/** Finished results kept for `waitForExecution` after nobody was waiting. */
const RESULT_RETENTION = 10_000
/** Backoff before retry n: BASE × 2^(n−1), at most MAX. */
const RETRY_BASE_MS = 10
const RETRY_MAX_MS = 1000

/** What the engine needs from the state layer (kept narrow so the engine knows nothing of its insides). */
export interface StateCleanup {
  cleanupExecution(executionId: string): void
  threadExited(threadId: number): void
}

/** One pool message in flight. */
interface Batch {
  executions: Execution[]
  /** The pool's message slot, which tells the thread running it. */
  slot: number
  /** Runs alone on its thread (a suspect after a thread death): if that thread dies, this message killed it. */
  alone: boolean
  /** Whether a thread had taken the message when it died (set by {@link RuntimeEngine.threadExited}). */
  started: boolean
  /** Executions found to have killed their thread (set by {@link RuntimeEngine.threadExited}). */
  culprits: Set<string> | undefined
  /** Ended (by an `end` record) executions of this batch. */
  ended: Set<string>
  killTimer: NodeJS.Timeout | undefined
  /** Set when the engine terminated the message's thread (timeout grace passed, or stop without drain). */
  killedByUs: boolean
  /** Counted in `messagesBusy` (until every execution ended, or the message settled). */
  busy: boolean
  /** Ends whose output was too large for the ring; completed with the message's result. */
  largeEnds: EndRecord[]
}

export interface EngineHooks {
  /** Records other than `end`: `records[from, to)`, in ring order, decoded from `source`'s frame if given. */
  onRecords(records: WireRecord[], source: FrameSource | undefined, from: number, to: number): void
  /** Drains the record channel now. */
  drainRecords(): void
}

export class RuntimeEngine {
  readonly streams = new Map<string, ExecutionStream>()
  private readonly streamOrder: ExecutionStream[]
  private readonly executions = new Map<string, Execution>()
  private readonly results = new Map<string, ExecutionResult>()
  /**
   * Ids in `results`, oldest first, as a ring: evicting through `Map.keys().next()` instead would skip an
   * ever longer run of deleted entries on every call.
   */
  private readonly resultOrder: (string | undefined)[] = new Array(RESULT_RETENTION)
  private resultNext = 0
  private readonly batchOf = new Map<string, Batch>()
  private readonly inFlight = new Set<Batch>()
  private readonly idempotency: IdempotencyCache
  private readonly control: BroadcastChannel
  private pool: WorkerPool | undefined
  private messagesInFlight = 0
  /**
   * Messages in flight with an execution not yet ended. A message whose every end was consumed no longer
   * occupies its thread, though Piscina's reply may still be on its way; counting it as busy until then
   * would make the next burst's messages too few and too big, and pile them onto one thread.
   */
  private messagesBusy = 0
  private readonly messageSlots: number
  private seq = 0
  private rr = 0
  private dispatchScheduled = false
  private accepting = false
  private idleWaiters: (() => void)[] = []
  /** Executions admitted and not yet final. */
  private active = 0

  constructor(
    private readonly config: ResolvedRuntimeConfig,
    readonly runtimeId: string,
    private readonly bus: EventBus,
    private readonly state: StateCleanup,
    private readonly hooks: EngineHooks,
  ) {
    for (const [i, ep] of config.entryPoints.entries()) this.streams.set(ep.id, new ExecutionStream(ep, i))
    this.streamOrder = [...this.streams.values()].sort(
      (a, b) => b.entryPoint.priority - a.entryPoint.priority,
    )
    this.idempotency = new IdempotencyCache(config.idempotency.ttlMs, config.idempotency.maxKeys)
    this.control = new BroadcastChannel(controlChannelName(runtimeId))
    this.control.unref()
    this.messageSlots = config.pool.threads * config.pool.tasksPerThread
  }

  attach(pool: WorkerPool): void {
    this.pool = pool
    this.accepting = true
  }

  /** Admits one execution; returns its id, or the remembered id for a repeated idempotency key. */
  admit(
    entryPointId: string,
    input: unknown,
    opts: TriggerOptions = {},
    depth = 0,
    delegated = false,
  ): string {
    const stream = this.streams.get(entryPointId)
    if (stream === undefined) throw new UnknownEntryPointError(entryPointId, [...this.streams.keys()])
    if (!this.accepting) throw new NotRunningError(`trigger(${JSON.stringify(entryPointId)})`)
    // Keys are per entry point: the same delivery id sent to two webhooks starts two executions.
    const key = opts.idempotencyKey === undefined ? undefined : `${stream.id}\u0000${opts.idempotencyKey}`
    if (key !== undefined) {
      const first = this.idempotency.get(key)
      if (first !== undefined) return first
    }
    if (stream.full) {
      stream.rejected++
      throw new QueueFullError(stream.id, stream.entryPoint.maxQueue)
    }
    const e = newExecution(randomUUID(), stream, input, opts, this.seq++, depth, delegated)
    if (key !== undefined) this.idempotency.set(key, e.id)
    this.executions.set(e.id, e)
    stream.admitted++
    this.active++
    if (e.signal !== undefined) this.watchSignal(e, e.signal)
    if (e.phase !== 'done') {
      stream.enqueue(e)
      this.scheduleDispatch()
    }
    return e.id
  }

  /** Resolves when the execution is final (at once if it already is). */
  wait(executionId: string): Promise<ExecutionResult> | undefined {
    const done = this.results.get(executionId)
    if (done !== undefined) return Promise.resolve(done)
    const e = this.executions.get(executionId)
    if (e === undefined) return undefined
    if (e.promise === undefined) {
      e.promise = new Promise((resolve) => {
        e.settle = resolve
      })
    }
    return e.promise
  }

  /** Depth of a live execution in an event cascade; 0 if unknown. */
  depthOf(executionId: string): number {
    return this.executions.get(executionId)?.depth ?? 0
  }

  stats(): RuntimeStats {
    const streams: RuntimeStats['streams'] = {}
    for (const s of this.streams.values()) streams[s.id] = s.stats()
    return {
      running: this.accepting,
      streams,
      pool: {
        threads: this.pool?.threads ?? 0,
        tasksPerThread: this.config.pool.tasksPerThread,
        utilization: this.pool?.utilization ?? 0,
        messagesInFlight: this.messagesInFlight,
        threadsReplaced: this.pool?.threadsReplaced ?? 0,
      },
    }
  }

  /**
   * A pool thread is gone; called after its records were drained and before its messages reject. Judges
   * which unfinished executions it carried: when exactly one was running there (and the engine did not
   * stop the thread itself), that one killed it; otherwise each is a suspect and re-runs alone.
   */
  threadExited(threadId: number): void {
    const onThread = [...this.inFlight].filter((b) => this.pool!.threadOf(b.slot) === threadId)
    const unfinished: { batch: Batch; id: string }[] = []
    for (const b of onThread) {
      b.started = true
      for (const e of b.executions)
        if (!b.ended.has(e.id) && e.phase === 'running') unfinished.push({ batch: b, id: e.id })
    }
    const only = unfinished.length === 1 ? unfinished[0]! : undefined
    if (only !== undefined && !only.batch.killedByUs) only.batch.culprits = new Set([only.id])
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
      if (valid) this.onEnd(r as EndRecord)
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
    this.accepting = false
    if (opts.drain === false) {
      for (const s of this.streams.values()) {
        for (const e of s.takeAll())
          this.finish(e, 'cancelled', new ExecutionCancelledError(e.id, 'the runtime stopped'))
      }
      for (const e of [...this.executions.values()]) {
        if (e.phase === 'running' || e.phase === 'backoff') {
          this.finish(e, 'cancelled', new ExecutionCancelledError(e.id, 'the runtime stopped'))
        }
      }
      // Nothing admitted is left to finish: stop the threads now rather than after the grace period.
      for (const batch of this.inFlight) this.kill(batch)
    }
    if (this.active > 0 || this.messagesInFlight > 0) {
      await new Promise<void>((resolve) => this.idleWaiters.push(resolve))
    }
    this.hooks.drainRecords()
    this.control.close()
  }

  // -- dispatch -------------------------------------------------------------------------------------------

  private scheduleDispatch(): void {
    if (this.dispatchScheduled) return
    this.dispatchScheduled = true
    // A microtask: every trigger of the current tick is admitted first, so deep queues form real batches.
    queueMicrotask(() => {
      this.dispatchScheduled = false
      this.dispatch()
    })
  }

  private dispatch(): void {
    if (this.pool === undefined) return
    this.dispatchDelegated()
    while (this.messagesBusy < this.messageSlots) {
      let startable = 0
      for (const s of this.streamOrder) startable += s.startable
      if (startable === 0) return
      // Spread over every slot, not just the free ones: what does not fit waits here for the next free
      // slot rather than piling onto whichever thread happens to take a big message. Sized from what is
      // left each time, messages shrink as a queue drains (guided self-scheduling), so the last ones are
      // small and every thread finishes at about the same time.
      const size = Math.min(MAX_BATCH, Math.ceil(startable / this.messageSlots))
      const batch = this.takeBatch(size)
      if (batch.length === 0) return
      this.send(batch)
    }
  }

  /**
   * A delegated execution's parent holds a pool slot while it waits, so when every slot is held by such
   * parents, waiting for a free slot would deadlock: delegated executions go out at once, one per message
   * (the pool keeps {@link DELEGATION_HEADROOM} spare messages per thread for them).
   */
  private dispatchDelegated(): void {
    for (const s of this.streamOrder) {
      while (s.startable > 0 && s.peek()!.delegated) {
        const e = s.dequeue()!
        s.running++
        e.phase = 'running'
        this.send([e])
      }
    }
  }

  /** Takes up to `size` startable executions, round-robin over streams; a solo execution travels alone. */
  private takeBatch(size: number): Execution[] {
    const out: Execution[] = []
    const n = this.streamOrder.length
    let progressed = true
    while (out.length < size && progressed) {
      progressed = false
      for (let i = 0; i < n && out.length < size; i++) {
        const s = this.streamOrder[(this.rr + i) % n]!
        if (s.startable === 0) continue
        const e = s.dequeue()!
        if (e.solo && out.length > 0) {
          s.enqueue(e)
          return out
        }
        s.running++
        e.phase = 'running'
        out.push(e)
        progressed = true
        if (e.solo) return out
      }
    }
    this.rr = (this.rr + 1) % Math.max(1, n)
    return out
  }

  private send(executions: Execution[]): void {
    const now = Date.now()
    const batch: Batch = {
      executions,
      slot: this.pool!.takeSlot(),
      alone: executions.length === 1 && executions[0]!.solo,
      started: false,
      culprits: undefined,
      ended: new Set(),
      killTimer: undefined,
      killedByUs: false,
      largeEnds: [],
      busy: true,
    }
    const tasks: ExecutionTask[] = []
    for (const e of executions) {
      if (e.startedAt === 0) e.startedAt = now
      this.batchOf.set(e.id, batch)
      if (e.timeoutMs > 0) e.timer = setTimeout(() => this.onTimeout(e), e.timeoutMs)
      const task: ExecutionTask = {
        executionId: e.id,
        entryPoint: e.stream.index,
        attempt: e.attempt,
        input: e.input,
      }
      if (e.correlationId !== e.id) task.correlationId = e.correlationId
      if (e.meta !== API_META) task.meta = e.meta
      tasks.push(task)
      this.bus.publish({
        type: 'execution_started',
        streamId: e.stream.id,
        executionId: e.id,
        correlationId: e.correlationId,
        data: { entryPointId: e.stream.id, attempt: e.attempt },
      })
    }
    this.messagesInFlight++
    this.messagesBusy++
    this.inFlight.add(batch)
    this.pool!.run({ executions: tasks, slot: batch.slot }, batch.alone).then(
      (result) => this.onBatchSettled(batch, undefined, result),
      (err: unknown) => this.onBatchSettled(batch, err, undefined),
    )
  }

  private onBatchSettled(batch: Batch, err: unknown, result: BatchResult | undefined): void {
    this.messagesInFlight--
    this.release(batch)
    this.inFlight.delete(batch)
    this.pool!.releaseSlot(batch.slot)
    if (batch.killTimer !== undefined) clearTimeout(batch.killTimer)
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
    for (const e of batch.executions) {
      if (this.batchOf.get(e.id) === batch) this.batchOf.delete(e.id)
      if (batch.ended.has(e.id) || e.phase === 'done' || e.phase !== 'running') continue
      // Still running after its message ended: its thread died (or the message was aborted) before its end.
      this.state.cleanupExecution(e.id)
      this.clearTimer(e)
      e.stream.running--
      const culprit = batch.culprits?.has(e.id) === true
      // A handler that ran (even partly) made an attempt, whose records are kept; the re-run is a new one.
      if (!culprit && batch.started) e.attempt++
      if (batch.killedByUs && !culprit) {
        // Its thread was stopped for another execution's sake: run it again.
        e.stream.enqueue(e)
      } else if (!culprit) {
        // Its thread died with other executions on it: a suspect, not yet a culprit. Run it again alone.
        e.solo = true
        e.stream.enqueue(e)
      } else {
        const crash = new WorkerCrashedError(
          `the thread running execution ${e.id} died: ${err instanceof Error ? err.message : String(err)}`,
          { executionId: e.id },
        )
        this.failAttempt(e, crash)
      }
    }
    this.scheduleDispatch()
    this.checkIdle()
  }

  private onEnd(r: EndRecord): void {
    const e = this.executions.get(r.executionId)
    const batch = this.batchOf.get(r.executionId)
    if (batch !== undefined) {
      batch.ended.add(r.executionId)
      if (batch.ended.size === batch.executions.length) this.release(batch)
      if (r.largeOutput === true) {
        batch.largeEnds.push(r)
        return
      }
    }
    // An end for an attempt that is no longer current (timed out, cancelled, or re-run) changes nothing.
    if (e === undefined || e.phase !== 'running' || e.attempt !== r.attempt) return
    e.stream.running--
    this.clearTimer(e)
    if (r.ok) {
      this.finish(e, 'completed', undefined, r.output, r.completedAt)
    } else {
      const error = r.error!
      this.failAttempt(e, error as unknown as AgentPoolError)
    }
    this.scheduleDispatch()
  }

  /** The message no longer holds a slot for dispatch. */
  private release(batch: Batch): void {
    if (!batch.busy) return
    batch.busy = false
    this.messagesBusy--
    this.pool!.releaseBusy(batch.slot)
  }

  /** A failed attempt: retry if allowed, else the execution fails. */
  private failAttempt(
    e: Execution,
    error: { code?: string; message: string; name?: string; stack?: string },
  ): void {
    if (e.attempt <= e.stream.entryPoint.maxRetries) {
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
        this.scheduleDispatch()
      }, delay)
      return
    }
    this.finish(e, 'failed', error)
  }

  private onTimeout(e: Execution): void {
    e.timer = undefined
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
    error?: { code?: string; message: string; name?: string; stack?: string },
    output?: unknown,
    completedAt = Date.now(),
  ): void {
    if (e.phase === 'done') return
    const wasRunning = e.phase === 'running'
    if (wasRunning && status !== 'completed' && status !== 'failed') {
      e.stream.running--
      this.abortRunning(e, status === 'timed_out' ? 'timeout' : this.accepting ? 'cancelled' : 'stopping')
    }
    e.phase = 'done'
    this.clearTimer(e)
    e.detachSignal?.()
    const startedAt = e.startedAt || completedAt
    const result: ExecutionResult = {
      executionId: e.id,
      streamId: e.stream.id,
      correlationId: e.correlationId,
      status,
      attempts: e.attempt,
      startedAt,
      completedAt,
      durationMs: completedAt - startedAt,
    }
    if (status === 'completed') result.output = output
    if (error !== undefined) result.error = publicError(error)
    e.stream.record(result)
    this.remember(result)
    this.active--
    // Still known while its end is published: event triggers ask for its cascade depth.
    this.publishEnd(e, result)
    this.executions.delete(e.id)
    e.settle?.(result)
    this.checkIdle()
  }

  private abortRunning(e: Execution, reason: ControlMessage['reason']): void {
    const message: ControlMessage = { kind: 'abort', executionId: e.id, reason }
    this.control.postMessage(message)
    const batch = this.batchOf.get(e.id)
    if (batch === undefined || batch.killTimer !== undefined) return
    batch.killTimer = setTimeout(() => {
      batch.killTimer = undefined
      if (batch.executions.every((x) => batch.ended.has(x.id))) return
      this.kill(batch)
    }, ABORT_GRACE_MS)
    batch.killTimer.unref()
  }

  /**
   * Terminates the thread running `batch`. Every message on that thread dies with it; they are all marked
   * as killed by us, so their unfinished executions are re-run rather than failed as crashes.
   */
  private kill(batch: Batch): void {
    const threadId = this.pool!.threadOf(batch.slot)
    if (threadId < 0) {
      // Not on a thread yet: look again after another grace period.
      batch.killTimer = setTimeout(() => this.kill(batch), ABORT_GRACE_MS)
      batch.killTimer.unref()
      return
    }
    for (const other of this.inFlight) {
      if (this.pool!.threadOf(other.slot) === threadId) other.killedByUs = true
    }
    this.pool!.terminateThread(threadId)
  }

  private publishEnd(e: Execution, r: ExecutionResult): void {
    if (r.status === 'completed') {
      this.bus.publish({
        type: 'execution_completed',
        streamId: e.stream.id,
        executionId: e.id,
        correlationId: e.correlationId,
        data: { attempt: e.attempt, durationMs: r.durationMs },
      })
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

  private remember(r: ExecutionResult): void {
    const evicted = this.resultOrder[this.resultNext]
    if (evicted !== undefined) this.results.delete(evicted)
    this.resultOrder[this.resultNext] = r.executionId
    this.resultNext = (this.resultNext + 1) % RESULT_RETENTION
    this.results.set(r.executionId, r)
  }

  private clearTimer(e: Execution): void {
    if (e.timer !== undefined) {
      clearTimeout(e.timer)
      e.timer = undefined
    }
  }

  private checkIdle(): void {
    if (this.active > 0 || this.messagesInFlight > 0 || this.idleWaiters.length === 0) return
    const waiters = this.idleWaiters
    this.idleWaiters = []
    for (const w of waiters) w()
  }
}

function publicError(error: {
  code?: string
  message: string
  name?: string
  stack?: string
}): NonNullable<ExecutionResult['error']> {
  const out: NonNullable<ExecutionResult['error']> = {
    code: error.code ?? ErrorCode.HANDLER_FAILED,
    message: error.message,
  }
  if (error.name !== undefined) out.name = error.name
  if (error.stack !== undefined) out.stack = error.stack
  return out
}

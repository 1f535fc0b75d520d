/**
 * Dispatch: carries startable executions to pool threads in pool messages, and tracks each message until
 * it settles. Main thread only; nothing here blocks.
 *
 * When queues are shallow each message carries one execution; when they are deep, the executions that may
 * start are spread over the free message slots (`threads × tasksPerThread`), up to {@link MAX_BATCH} per
 * message, which hides the per-message cost. Short executions travel at least {@link MESSAGE_WORK_US} of
 * work to a message (sized from the busy time threads report per execution ended on them), so the
 * small messages at the end of a burst do not cost more than the work they carry. Each execution keeps its
 * own result, timeout and error.
 *
 * Timeouts and cancellation abort a running handler through the control channel; if its message has not
 * finished {@link ABORT_GRACE_MS} later, its thread is terminated (and replaced).
 *
 * @module
 */
import { BroadcastChannel } from 'node:worker_threads'
import type { BatchResult, ControlMessage, EndRecord, ExecutionTask } from '../protocol.js'
import { API_META, controlChannelName } from '../protocol.js'
import type { Lease } from '../state/index.js'
import type { Execution, ExecutionStream } from './execution-stream.js'
import { ABORT_GRACE_MS, MAX_BATCH, MESSAGE_WORK_US } from './limits.js'
import type { WorkerPool } from './worker-pool.js'

/** One pool message in flight. */
export interface Batch {
  executions: Execution[]
  /** The state lease each execution's attempt carried (same order); released when the message settles. */
  leases: (Lease | undefined)[]
  /** The pool's message slot, which tells the thread running it. */
  slot: number
  /** Runs alone on its thread (a suspect after a thread death): if that thread dies, this message killed it. */
  alone: boolean
  /** Whether a thread had taken the message when it died (set by crash triage). */
  started: boolean
  /** Executions found to have killed their thread (set by crash triage). */
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

export interface DispatchHooks {
  /** `e` is on its way to a thread (its first or a later attempt); called before its task is built. */
  onStart(e: Execution): void
  /** A pool message settled: with `result`, or with `err` when its thread died or was terminated. */
  onSettled(batch: Batch, err: unknown, result: BatchResult | undefined): void
}

export class Dispatcher {
  private pool: WorkerPool | undefined
  private readonly batchOf = new Map<string, Batch>()
  private readonly inFlight = new Set<Batch>()
  private readonly control: BroadcastChannel
  /** Pool messages sent and not yet settled. */
  messagesInFlight = 0
  /**
   * Messages in flight with an execution not yet ended. A message whose every end was consumed no longer
   * occupies its thread, though Piscina's reply may still be on its way; counting it as busy until then
   * would make the next burst's messages too few and too big, and pile them onto one thread.
   */
  private messagesBusy = 0
  private readonly messageSlots: number
  private rr = 0
  /**
   * Recent busy time of a thread per execution ended on it, in microseconds (a moving average over the
   * threads' replies). Until they have said otherwise, executions count as long: one per message.
   */
  private executionUs = MESSAGE_WORK_US
  /** The same per stream, from the replies to messages that carried the stream's executions. */
  private readonly streamUs = new Map<ExecutionStream, number>()
  private scheduled = false
  private coalescing = false

  constructor(
    runtimeId: string,
    private readonly threads: number,
    tasksPerThread: number,
    private readonly streamOrder: readonly ExecutionStream[],
    private readonly hooks: DispatchHooks,
  ) {
    this.control = new BroadcastChannel(controlChannelName(runtimeId))
    this.control.unref()
    this.messageSlots = threads * tasksPerThread
  }

  attach(pool: WorkerPool): void {
    this.pool = pool
  }

  schedule(): void {
    if (this.scheduled) return
    this.scheduled = true
    // A microtask: every trigger of the current tick is admitted first, so deep queues form real batches.
    queueMicrotask(() => {
      this.scheduled = false
      this.dispatch()
    })
  }

  /**
   * Dispatches once the event loop's current I/O phase is over, at most one message per thread: for
   * executions that arrive one per I/O callback (cluster jobs, each taken from Redis by its own reply), so
   * those of one phase share a pool message rather than paying for one each. Short ones share one message
   * as long as it carries less than {@link MESSAGE_WORK_US} of work: each message wakes a thread.
   */
  scheduleCoalesced(): void {
    if (this.coalescing) return
    this.coalescing = true
    setImmediate(() => {
      this.coalescing = false
      this.dispatch(this.threads, true)
    })
  }

  /** The messages in flight on thread `threadId`. */
  batchesOn(threadId: number): Batch[] {
    return [...this.inFlight].filter((b) => this.pool!.threadOf(b.slot) === threadId)
  }

  /**
   * Notes that `r`'s execution ended on its thread. Returns false when its output was too large for the
   * ring: the end then waits for its message's result.
   */
  noteEnd(r: EndRecord): boolean {
    this.markEnded(r.executionId)
    if (r.largeOutput === true) {
      const batch = this.batchOf.get(r.executionId)
      if (batch === undefined) return true
      batch.largeEnds.push(r)
      return false
    }
    return true
  }

  /**
   * Notes that an execution's attempt is over although its thread did not say so (the engine ended it):
   * when its message settles, it is not taken for unfinished.
   */
  markEnded(executionId: string): void {
    const batch = this.batchOf.get(executionId)
    if (batch === undefined) return
    batch.ended.add(executionId)
    if (batch.ended.size === batch.executions.length) this.release(batch)
  }

  /**
   * Terminates thread `threadId` on the engine's own account: the unfinished executions of its messages
   * re-run (none of them is taken for the culprit of a crash).
   */
  stopThread(threadId: number): void {
    for (const other of this.inFlight) {
      if (this.pool!.threadOf(other.slot) === threadId) other.killedByUs = true
    }
    this.pool!.terminateThread(threadId)
  }

  /** Forgets which message carried the executions of a settled `batch`. */
  forget(batch: Batch): void {
    for (const e of batch.executions) if (this.batchOf.get(e.id) === batch) this.batchOf.delete(e.id)
  }

  /**
   * Tells a running attempt to abort; if its message outlives the grace period, the message (and its
   * thread) is killed.
   */
  abortRunning(e: Execution, reason: ControlMessage['reason']): void {
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

  /** Terminates the threads of every message in flight. */
  killAll(): void {
    for (const batch of this.inFlight) this.kill(batch)
  }

  close(): void {
    this.control.close()
  }

  /**
   * Sends what may start, spread over `spread` messages (each at most {@link MAX_BATCH}) while slots are free.
   * `gathered`: what may start arrived over a whole I/O phase (see {@link scheduleCoalesced}).
   */
  private dispatch(spread = this.messageSlots, gathered = false): void {
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
      // Short executions go at least MESSAGE_WORK_US to a message, but never so many that fewer messages
      // than threads would carry what may start, unless they were gathered over an I/O phase: then each
      // stream's own record says how short they are, and a thread is not woken for less.
      const smallest = gathered
        ? this.smallestMessage(this.longestStartableUs())
        : Math.min(this.smallestMessage(this.executionUs), Math.ceil(startable / this.threads))
      const size = Math.min(MAX_BATCH, Math.max(Math.ceil(startable / spread), smallest))
      const batch = this.takeBatch(size)
      if (batch.length === 0) return
      this.send(batch)
    }
  }

  /**
   * Executions a message carries at least (when that many may start): {@link MESSAGE_WORK_US} of work, at
   * `executionUs` each.
   */
  private smallestMessage(executionUs: number): number {
    return Math.ceil(MESSAGE_WORK_US / Math.max(1, executionUs))
  }

  /** Busy time per execution of the slowest stream with executions that may start (one not run yet counts as long). */
  private longestStartableUs(): number {
    let longest = 0
    for (const s of this.streamOrder) {
      if (s.startable > 0) longest = Math.max(longest, this.streamUs.get(s) ?? MESSAGE_WORK_US)
    }
    return longest
  }

  /**
   * A delegated execution's parent holds a pool slot while it waits, so when every slot is held by such
   * parents, waiting for a free slot would deadlock: delegated executions go out at once, one per message
   * (the pool keeps `DELEGATION_HEADROOM` spare messages per thread for them).
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
      leases: [],
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
      // First: it opens the attempt's state lease, which the task carries.
      this.hooks.onStart(e)
      batch.leases.push(e.lease)
      const task: ExecutionTask = {
        executionId: e.id,
        entryPoint: e.stream.index,
        attempt: e.attempt,
        input: e.input,
        lease: e.lease,
      }
      if (e.correlationId !== e.id) task.correlationId = e.correlationId
      if (e.meta !== API_META) task.meta = e.meta
      tasks.push(task)
    }
    this.messagesInFlight++
    this.messagesBusy++
    this.inFlight.add(batch)
    this.pool!.run({ executions: tasks, slot: batch.slot }, batch.alone).then(
      (result) => this.settled(batch, undefined, result),
      (err: unknown) => this.settled(batch, err, undefined),
    )
  }

  private settled(batch: Batch, err: unknown, result: BatchResult | undefined): void {
    if (result?.busyUs !== undefined && result.ended !== undefined && result.ended > 0) {
      const sample = result.busyUs / result.ended
      this.executionUs = movingAverage(this.executionUs, sample)
      for (const s of new Set(batch.executions.map((e) => e.stream))) {
        this.streamUs.set(s, movingAverage(this.streamUs.get(s) ?? MESSAGE_WORK_US, sample))
      }
    }
    this.messagesInFlight--
    this.release(batch)
    this.inFlight.delete(batch)
    this.pool!.releaseSlot(batch.slot)
    if (batch.killTimer !== undefined) clearTimeout(batch.killTimer)
    this.hooks.onSettled(batch, err, result)
  }

  /** The message no longer holds a slot for dispatch. */
  private release(batch: Batch): void {
    if (!batch.busy) return
    batch.busy = false
    this.messagesBusy--
    this.pool!.releaseBusy(batch.slot)
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
    this.stopThread(threadId)
  }
}

/** A moving average of busy time per execution; one slow sample (a collection, a descheduled thread) moves it at most ×1.6. */
function movingAverage(average: number, sample: number): number {
  return average + (Math.min(sample, 4 * average) - average) * 0.2
}

/**
 * One stream per entry point: its admission limits, its priority queue and its counters. Main thread
 * only. Streams are independent: each has its own `maxConcurrent` and `maxQueue`, so a slow or full
 * stream never takes a slot of another.
 *
 * @module
 */
import type { ResolvedEntryPoint } from '../config/index.js'
import type { Lease } from '../state/index.js'
import { LatencyWindow } from './latency-window.js'
import type { TimeoutEntry } from './timeouts.js'
import type { ExecutionResult, StreamStats, TriggerOptions } from './types.js'

/** One execution as the main thread tracks it, from admission to its final result. */
export interface Execution {
  readonly id: string
  readonly stream: ExecutionStream
  readonly correlationId: string
  readonly input: unknown
  readonly meta: Readonly<Record<string, unknown>>
  readonly priority: number
  readonly timeoutMs: number
  readonly signal: AbortSignal | undefined
  /** Cascade depth: 0 for outside triggers, parent + 1 for executions started by events or delegation. */
  readonly depth: number
  /**
   * Started by `ctx.trigger` from another execution, which holds a pool slot while it waits: it starts
   * before the other queued executions of its stream and does not wait for a free pool slot.
   */
  readonly delegated: boolean
  /** Admission order; ties in priority start first-come. */
  readonly seq: number
  readonly admittedAt: number
  /** Attempts after the first that this engine may run itself (0 for a cluster job: the queue retries it). */
  maxRetries: number
  attempt: number
  /** Re-runs after conflicting `serializable` commits, over all attempts. */
  conflicts: number
  /** When the first attempt was dispatched. */
  startedAt: number
  phase: 'queued' | 'running' | 'backoff' | 'done'
  /** Run alone in its pool message: set after the message it shared died, so a culprit cannot take innocents down again. */
  solo: boolean
  settle: ((r: ExecutionResult) => void) | undefined
  promise: Promise<ExecutionResult> | undefined
  /** The retry backoff's timer. */
  timer: NodeJS.Timeout | undefined
  /** The running attempt's timeout. */
  deadline: TimeoutEntry<Execution> | undefined
  /** The running attempt's state lease (see `SharedBufferManager.openLease`); ended with the attempt. */
  lease: Lease | undefined
  detachSignal: (() => void) | undefined
}

export function newExecution(
  id: string,
  stream: ExecutionStream,
  input: unknown,
  opts: TriggerOptions,
  seq: number,
  depth: number,
  delegated = false,
): Execution {
  const now = Date.now()
  return {
    id,
    stream,
    correlationId: opts.correlationId ?? id,
    input,
    meta: opts.meta ?? {},
    priority: stream.entryPoint.priority + (opts.priority ?? 0),
    timeoutMs: opts.timeoutMs ?? stream.entryPoint.timeoutMs,
    signal: opts.signal,
    depth,
    delegated,
    seq,
    admittedAt: now,
    maxRetries: stream.entryPoint.maxRetries,
    attempt: 1,
    conflicts: 0,
    startedAt: 0,
    phase: 'queued',
    solo: false,
    settle: undefined,
    promise: undefined,
    timer: undefined,
    deadline: undefined,
    lease: undefined,
    detachSignal: undefined,
  }
}

export class ExecutionStream {
  readonly id: string
  running = 0
  admitted = 0
  completed = 0
  failed = 0
  timedOut = 0
  cancelled = 0
  rejected = 0
  retried = 0
  /** Re-runs after conflicting `serializable` commits. */
  conflicts = 0
  private readonly heap: Execution[] = []
  private readonly latency = new LatencyWindow()

  constructor(
    readonly entryPoint: ResolvedEntryPoint,
    /** Position of the entry point in the config, as pool threads know it. */
    readonly index: number,
  ) {
    this.id = entryPoint.id
  }

  get queued(): number {
    return this.heap.length
  }

  /** True when `maxQueue` executions already wait. */
  get full(): boolean {
    return this.heap.length >= this.entryPoint.maxQueue
  }

  /** How many more of this stream's executions may start now. */
  get startable(): number {
    return Math.min(this.heap.length, this.entryPoint.maxConcurrent - this.running)
  }

  enqueue(e: Execution): void {
    e.phase = 'queued'
    this.heap.push(e)
    this.siftUp(this.heap.length - 1)
  }

  /** The execution {@link dequeue} would return, left in place. */
  peek(): Execution | undefined {
    return this.heap[0]
  }

  /** The next execution to start: delegated first, then highest priority, then first admitted. */
  dequeue(): Execution | undefined {
    const top = this.heap[0]
    if (top === undefined) return undefined
    const last = this.heap.pop()!
    if (this.heap.length > 0) {
      this.heap[0] = last
      this.siftDown(0)
    }
    return top
  }

  /** Takes a queued execution out (cancelled while waiting). */
  remove(e: Execution): boolean {
    const i = this.heap.indexOf(e)
    if (i < 0) return false
    const last = this.heap.pop()!
    if (i < this.heap.length) {
      this.heap[i] = last
      this.siftDown(i)
      this.siftUp(i)
    }
    return true
  }

  /** Every queued execution, emptying the queue. */
  takeAll(): Execution[] {
    return this.heap.splice(0, this.heap.length)
  }

  /** Counts a final result. */
  record(result: ExecutionResult): void {
    switch (result.status) {
      case 'completed':
        this.completed++
        break
      case 'failed':
        this.failed++
        break
      case 'timed_out':
        this.timedOut++
        break
      case 'cancelled':
        this.cancelled++
        break
    }
    this.latency.add(result.completedAt - result.startedAt)
  }

  stats(): StreamStats {
    return {
      streamId: this.id,
      running: this.running,
      queued: this.heap.length,
      admitted: this.admitted,
      completed: this.completed,
      failed: this.failed,
      timedOut: this.timedOut,
      cancelled: this.cancelled,
      rejected: this.rejected,
      retried: this.retried,
      conflicts: this.conflicts,
      maxConcurrent: this.entryPoint.maxConcurrent,
      maxQueue: this.entryPoint.maxQueue,
      latencyMs: this.latency.percentiles(),
    }
  }

  private before(a: Execution, b: Execution): boolean {
    if (a.delegated !== b.delegated) return a.delegated
    return a.priority !== b.priority ? a.priority > b.priority : a.seq < b.seq
  }

  private siftUp(i: number): void {
    const h = this.heap
    while (i > 0) {
      const parent = (i - 1) >> 1
      if (!this.before(h[i]!, h[parent]!)) break
      ;[h[i], h[parent]] = [h[parent]!, h[i]!]
      i = parent
    }
  }

  private siftDown(i: number): void {
    const h = this.heap
    for (;;) {
      const l = 2 * i + 1
      const r = l + 1
      let best = i
      if (l < h.length && this.before(h[l]!, h[best]!)) best = l
      if (r < h.length && this.before(h[r]!, h[best]!)) best = r
      if (best === i) return
      ;[h[i], h[best]] = [h[best]!, h[i]!]
      i = best
    }
  }
}

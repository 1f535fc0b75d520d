/**
 * `RunLog`: the main thread's side of the run log. Operations are appended in the order they happen and
 * sent to the writer thread in batches (group commit), each committed as one transaction. A batch goes
 * out as soon as someone waits for what it holds ({@link RunLog.committed}: `trigger()` and the webhook's
 * `202` wait for their admission, a result for its execution's end): `syncMs` after the first such wait,
 * or at the end of that event loop turn when `syncMs` is 0. What nobody waits for (a `triggerAndWait`
 * admission, whose caller acknowledges nothing before the result; an end or a state change nobody awaits)
 * rides along with the next batch someone waits for, and goes out on its own at most
 * {@link UNAWAITED_MS} after it was appended. So an execution admitted and ended within that time, with
 * only its result awaited, is one row written in one commit instead of two rows in two.
 *
 * A result is patient ({@link RunLog.committed} with `patient`): while other executions of this process
 * are still unfinished ({@link RunLog.moreComing}), their ends are on their way, and the batch waits for
 * them up to {@link RESULT_GATHER_MS} after its first waiter; it goes out at the end of the turn in which
 * the last of them ends, or in which it gathered {@link ENOUGH_ENDS} ends. Each batch costs a wake of the writer thread and a commit whatever its size, so
 * under load this is most of the log's cost per execution (see docs/benchmarks.md, "Durable runs").
 * An acknowledgement (`trigger()`, a webhook's `202`) never waits for company beyond `syncMs`.
 *
 * An admission nobody was acknowledged for (a `triggerAndWait`'s, {@link RunLog.hold}) is held back from
 * the batches until its execution's end, or its first state change or record, is appended, or until it
 * has run for {@link HELD_RUN_MS}: its end then folds into it, and the run is one row written once
 * instead of an insert and a later update of the same page. A process killed meanwhile loses it, which
 * loses nothing acknowledged and no effect: an execution whose effects are in a batch has its admission
 * in that batch too, so it is re-run after a crash like any unfinished one.
 *
 * One batch is in flight at a time: whatever arrives while the writer commits goes out as the next batch
 * once it is done (when someone waits for it), so batches grow with the load and the writer's cost
 * per operation falls as it rises. The one exception is the last results of a burst, when nothing else
 * is running: they follow at once, the batch sent as the last awaited end is appended rather than at the
 * end of that turn of the event loop. Main thread only; nothing here blocks.
 *
 * A batch is encoded once, here, into one buffer transferred to the writer (`codec.ts`), which hands it
 * back once committed so that the next batch is written into the same memory; within a
 * batch, an execution's start and end fold into its admission while that waits, and a state key keeps
 * only its latest version. The batch is one transaction, so what it commits is the same as writing each
 * operation on its own (`test/durability-batching.test.ts` holds the two side by side).
 *
 * @module
 */
import { fileURLToPath } from 'node:url'
import { Worker } from 'node:worker_threads'
import type { Goal } from '../config/index.js'
import { DurabilityError } from '../errors.js'
import type { OutcomeAggregatorOptions } from '../outcomes/types.js'
import type {
  AdmitOp,
  LogOp,
  Recovery,
  RunRow,
  StartOp,
  StateOp,
  WriterReply,
  WriterRequest,
} from '../protocol.js'
import { encodeBatch } from './codec.js'
import type { WriterSetup } from './log-writer.js'

/** The resolved `durability` options, and what the writer's compaction needs of the runtime. */
export interface RunLogOptions {
  path: string
  syncMs: number
  retainRunsMs: number
  synchronous: 'normal' | 'full'
  /** Records between two snapshots of the aggregator (`compaction.ts`). */
  snapshotRecords: number
  /** The runtime's goal and aggregator options: compaction rebuilds its aggregator from the log. */
  goal: Goal | undefined
  outcomes: OutcomeAggregatorOptions
}

interface Deferred<T> {
  promise: Promise<T>
  resolve: (value: T) => void
  reject: (err: Error) => void
}

function deferred<T>(): Deferred<T> {
  let resolve!: (value: T) => void
  let reject!: (err: Error) => void
  const promise = new Promise<T>((res, rej) => {
    resolve = res
    reject = rej
  })
  // A batch nobody waited on must not surface as an unhandled rejection; waiters still see it.
  promise.catch(() => {})
  return { promise, resolve, reject }
}

const fromSource = import.meta.url.endsWith('.ts')
const writerEntry = new URL(fromSource ? './log-writer.ts' : './log-writer.js', import.meta.url).href
const bootstrapFile = fileURLToPath(
  new URL(fromSource ? '../../workers/bootstrap.mjs' : '../../../workers/bootstrap.mjs', import.meta.url),
)

/**
 * The longest an operation nobody waits for stays on the main thread before it is committed anyway. A
 * process killed meanwhile loses it: an end (with the state changes and records before it) is then run
 * again, as after any crash before its commit, and an unacknowledged admission was never promised.
 */
export const UNAWAITED_MS = 10

/**
 * The longest a batch whose waiters all wait for results is held for the ends of executions still
 * running (see the module's doc). Long enough that under load a commit carries tens of executions
 * instead of a handful; short beside the executions it delays, whose results wait on other work anyway.
 */
export const RESULT_GATHER_MS = 8

/**
 * Ends a batch needs to go out without waiting for more: enough to share a commit well. The writer then
 * commits them while the main thread handles the rest (with 256 no-op executions in flight, the last ends
 * otherwise wait for the first).
 */
export const ENOUGH_ENDS = 64

/**
 * How long a held admission's execution may run before its admission is written anyway, so that a long
 * run is re-run after a crash like any acknowledged one. A pool message runs its executions one after
 * another, so an execution counts as running from its message's dispatch: the bound is far above a
 * message's length.
 */
export const HELD_RUN_MS = 1000

/** A start waiting in `pending`, and where. */
interface PendingStart {
  op: 'pending_start'
  start: StartOp
  at: number
}

export class RunLog {
  private pending: LogOp[] = []
  /**
   * State changes waiting, by key: only the latest version of a key is written (the batch is one
   * transaction, so what it commits is the same), which turns a counter bumped by every execution of a
   * batch into one row.
   */
  private pendingState = new Map<string, StateOp>()
  /**
   * Admissions and starts in `pending`, by execution id: a start or end that arrives while they still
   * wait is folded into them, so an execution admitted and ended within one window is one row written once.
   */
  private pendingRuns = new Map<string, AdmitOp | PendingStart>()
  /** Ends appended since the last batch went out. */
  private pendingEnds = 0
  /** Admissions in `pending` held back from the batches (see {@link hold}). */
  private held = new Set<AdmitOp>()
  /** Executions whose admissions were held (their results are awaited), until their ends are appended. */
  private awaited = new Set<string>()
  /** Settles when the batch `pending` will become is committed; made only when someone waits. */
  private pendingDone: Deferred<void> | undefined
  /** When what is pending goes out: {@link UNAWAITED_MS} after it came, or sooner once someone waits. */
  private flushTimer: NodeJS.Timeout | NodeJS.Immediate | undefined
  /** When `flushTimer` fires (`performance.now()` time; -1: at the end of this turn). */
  private flushAt = 0
  /** When the first waiter of what is pending came. */
  private waitSince = 0
  /** Someone waits for an acknowledgement (not a result) of what is pending: no waiting for company. */
  private urgent = false
  /**
   * Whether executions of this process are still unfinished, so that more ends are on their way (set by
   * the runtime; none by default).
   */
  moreComing: () => boolean = () => false
  private readonly flushNow = () => this.flush()
  private nextBatch = 0
  private readonly inFlight = new Map<number, Deferred<void> | undefined>()
  /** The promise of the last batch sent, for {@link committed} when nothing is pending. */
  private lastSent: Promise<void> = Promise.resolve()
  /** The last committed batch's buffer, handed back by the writer: the next batch is written into it. */
  private spare: ArrayBuffer | undefined
  private nextRequest = 0
  private readonly requests = new Map<number, Deferred<unknown>>()
  /** Set once a write failed: the log no longer reflects what happened, so nothing more is acknowledged. */
  failure: DurabilityError | undefined

  private constructor(
    private readonly worker: Worker,
    private readonly opts: RunLogOptions,
  ) {
    worker.on('message', (m: WriterReply) => this.onReply(m))
    worker.on('error', (err) =>
      this.fail(new DurabilityError(opts.path, `the log writer thread failed: ${err.message}`, err)),
    )
  }

  /**
   * Starts the writer thread and opens the log.
   * @throws DurabilityError naming the file when it cannot be opened (see `LogStore.open`).
   */
  static async open(opts: RunLogOptions): Promise<RunLog> {
    const setup: WriterSetup = {
      path: opts.path,
      synchronous: opts.synchronous,
      retainRunsMs: opts.retainRunsMs,
      compaction: { goal: opts.goal, outcomes: opts.outcomes, every: opts.snapshotRecords },
    }
    const worker = new Worker(bootstrapFile, {
      workerData: { log: setup, bootstrap: { entry: writerEntry } },
    })
    const first = await new Promise<WriterReply | Error>((resolve) => {
      worker.once('message', resolve)
      worker.once('error', resolve)
    })
    if (first instanceof Error || first.kind !== 'ready') {
      await worker.terminate()
      if (first instanceof Error)
        throw new DurabilityError(opts.path, `the log writer thread failed: ${first.message}`, first)
      throw new DurabilityError(
        opts.path,
        first.kind === 'open_failed' ? stripPrefix(first.problem, opts.path) : 'unexpected reply',
      )
    }
    return new RunLog(worker, opts)
  }

  /** Appends one operation; it is committed with the next batch. */
  append(op: LogOp): void {
    if (op.op === 'record') this.release(op.executionId)
    else if (op.op === 'end') this.pendingEnds++
    if (op.op === 'state') this.keepLatest(op)
    else if (!this.fold(op)) this.pending.push(op)
    // The last end of a burst, its result awaited: out at once, not at the end of this turn, which first runs
    // every reply and result handler queued behind it. At most two batches in flight, as for lastOfAll.
    if (op.op === 'end' && this.awaited.delete(op.id) && !this.moreComing() && this.inFlight.size < 2) {
      this.send()
      return
    }
    // While a batch commits, its reply decides when this goes out.
    if (this.inFlight.size === 0) this.flushWithin(UNAWAITED_MS)
  }

  /**
   * Holds back the admission of `executionId`, appended last, from the batches: nobody is acknowledged
   * for it, only its result is awaited (see the module's doc). An admission with an idempotency key is
   * never held: a repeat of the key is acknowledged with its id.
   */
  hold(executionId: string): void {
    const op = this.pendingRuns.get(executionId)
    if (op?.op === 'admit' && op.idempotency === undefined && op.end === undefined) {
      this.held.add(op)
      this.awaited.add(executionId)
    }
  }

  /** The execution's effects are being appended: its admission, if held, goes out with them. */
  release(executionId: string): void {
    if (this.held.size === 0) return
    const op = this.pendingRuns.get(executionId)
    if (op?.op === 'admit') this.held.delete(op)
  }

  /**
   * Resolves once every operation appended so far (except held admissions) is committed.
   * @param patient the caller waits for a result, not an acknowledgement: the batch may wait for the
   * ends of other executions still running (see {@link RESULT_GATHER_MS}).
   * @throws DurabilityError when the log could not be written.
   */
  committed(patient = false): Promise<void> {
    if (this.failure !== undefined) return Promise.reject(this.failure)
    // Held admissions are always in `pending`: when only they are, nothing is to be written.
    if (this.pending.length === this.held.size && this.pendingState.size === 0) return this.lastSent
    if (this.pendingDone === undefined) {
      this.pendingDone = deferred()
      this.waitSince = performance.now()
    }
    if (!patient) this.urgent = true
    if (this.inFlight.size === 0 || this.lastOfAll()) this.flushWithin(this.waitLeft())
    return this.pendingDone.promise
  }

  /**
   * Someone waits for what is pending and nothing more is coming: it may go out while the batch before
   * it still commits (the writer commits batches in the order sent), so the last results of a burst do
   * not wait for a reply first. At most two batches are in flight.
   */
  private lastOfAll(): boolean {
    return this.pendingDone !== undefined && !this.urgent && !this.moreComing()
  }

  /** How much longer what someone waits for may gather (0: go out at the end of this turn). */
  private waitLeft(): number {
    const company = this.urgent || this.pendingEnds >= ENOUGH_ENDS || !this.moreComing()
    const window = company ? this.opts.syncMs : Math.max(this.opts.syncMs, RESULT_GATHER_MS)
    return Math.max(0, window - (performance.now() - this.waitSince))
  }

  /** What is pending goes out within `ms` (0: at the end of this turn), unless a sooner flush is set. */
  private flushWithin(ms: number): void {
    const at = ms === 0 ? -1 : performance.now() + ms
    if (this.flushTimer !== undefined) {
      if (this.flushAt <= at) return
      this.clearTimer()
    }
    this.flushAt = at
    this.flushTimer = ms === 0 ? setImmediate(this.flushNow) : setTimeout(this.flushNow, ms)
  }

  private clearTimer(): void {
    if (this.flushTimer === undefined) return
    clearTimeout(this.flushTimer as NodeJS.Timeout)
    clearImmediate(this.flushTimer as NodeJS.Immediate)
    this.flushTimer = undefined
  }

  /** Everything to restore at start. */
  recover(): Promise<Recovery> {
    return this.request<Recovery>((request) => ({ kind: 'recover', request }))
  }

  /** One run from the log (a run of an earlier process, for `waitForExecution`). */
  lookup(executionId: string): Promise<RunRow | undefined> {
    return this.request<RunRow | undefined>((request) => ({ kind: 'lookup', request, executionId }))
  }

  /** Commits what is pending, closes the file and stops the writer thread. */
  async close(): Promise<void> {
    // Runs a stop leaves unfinished are recovered at the next start: none is held back now.
    this.held.clear()
    this.awaited.clear()
    this.flush()
    await this.committed().catch(() => {})
    await this.request((request) => ({ kind: 'close', request })).catch(() => {})
    await this.worker.terminate()
  }

  private keepLatest(op: StateOp): void {
    const key = `${op.scope}\u0000${op.streamId}\u0000${op.key}`
    const earlier = this.pendingState.get(key)
    if (earlier === undefined || op.version >= earlier.version) this.pendingState.set(key, op)
  }

  /**
   * Folds a start or end into its execution's admission or start still waiting in `pending`. The batch is
   * one transaction, so the end still becomes durable together with every state change and record before it.
   */
  private fold(op: LogOp): boolean {
    switch (op.op) {
      case 'admit':
        this.pendingRuns.set(op.id, op)
        return false
      case 'start': {
        const earlier = this.pendingRuns.get(op.id)
        if (earlier?.op === 'admit') {
          // A later attempt within the window: its number, with the first attempt's start time.
          earlier.start = earlier.start === undefined ? op : { ...op, startedAt: earlier.start.startedAt }
          return true
        }
        // Appended next, at this index (`pending` only grows until it is sent).
        this.pendingRuns.set(op.id, { op: 'pending_start', start: op, at: this.pending.length })
        return false
      }
      case 'end': {
        const earlier = this.pendingRuns.get(op.id)
        if (earlier === undefined) return false
        this.pendingRuns.delete(op.id)
        if (earlier.op === 'admit') {
          earlier.end = op
          this.held.delete(earlier)
          return true
        }
        // A pending start is superseded: the end carries the attempts, and the start's time.
        this.pending[earlier.at] = { ...op, startedAt: earlier.start.startedAt }
        return true
      }
      default:
        return false
    }
  }

  private flush(): void {
    // One batch in flight at a time: what arrives meanwhile waits and goes out as one batch when it commits.
    if (this.inFlight.size > 0 && !(this.inFlight.size === 1 && this.lastOfAll())) {
      this.clearTimer()
      return
    }
    this.send()
  }

  /** Sends what is pending as the next batch, whatever is in flight. */
  private send(): void {
    this.clearTimer()
    if (this.pending.length === 0 && this.pendingState.size === 0) return
    const carried = this.held.size === 0 ? [] : this.takeHeld()
    if (this.pending.length === 0 && this.pendingState.size === 0) {
      // Only held admissions: nothing to write, and nothing anyone waits for. Look again when the first
      // to start has run for HELD_RUN_MS (an admission that starts or ends later is appended, and arms
      // a flush of its own).
      this.pending = carried
      this.pendingDone?.resolve()
      this.pendingDone = undefined
      this.urgent = false
      let firstStart = Number.POSITIVE_INFINITY
      for (const op of carried as AdmitOp[])
        firstStart = Math.min(firstStart, op.start?.startedAt ?? firstStart)
      if (firstStart !== Number.POSITIVE_INFINITY)
        this.flushWithin(Math.max(1, firstStart + HELD_RUN_MS - Date.now()))
      return
    }
    const batch = this.nextBatch++
    const done = this.pendingDone ?? deferred<void>()
    this.inFlight.set(batch, done)
    this.lastSent = done.promise
    const ops = this.pendingState.size === 0 ? this.pending : [...this.pending, ...this.pendingState.values()]
    this.pending = carried
    this.pendingState = new Map()
    this.pendingRuns = new Map()
    for (const op of carried) this.pendingRuns.set((op as AdmitOp).id, op as AdmitOp)
    this.pendingDone = undefined
    this.urgent = false
    this.pendingEnds = 0
    let bytes: Uint8Array<ArrayBuffer>
    try {
      bytes = encodeBatch(ops, this.spare)
      this.spare = undefined
    } catch (err) {
      this.fail(
        new DurabilityError(
          this.opts.path,
          `a value could not be encoded for the log (${(err as Error).message})`,
          err,
        ),
      )
      return
    }
    const message: WriterRequest = { kind: 'ops', batch, bytes }
    this.worker.postMessage(message, [bytes.buffer])
  }

  /**
   * Takes the held admissions out of `pending`, for the next batch; one whose execution has run for
   * {@link HELD_RUN_MS} stays in this one (so a long run is re-run after a crash).
   */
  private takeHeld(): LogOp[] {
    const carried: LogOp[] = []
    const kept: LogOp[] = []
    const since = Date.now() - HELD_RUN_MS
    for (const op of this.pending) {
      if (
        op.op === 'admit' &&
        this.held.has(op) &&
        !(op.start !== undefined && op.start.startedAt <= since)
      ) {
        carried.push(op)
        continue
      }
      kept.push(op)
    }
    this.held = new Set(carried as AdmitOp[])
    this.pending = kept
    return carried
  }

  private request<T>(make: (request: number) => WriterRequest): Promise<T> {
    if (this.failure !== undefined) return Promise.reject(this.failure)
    const request = this.nextRequest++
    const d = deferred<unknown>()
    this.requests.set(request, d)
    this.worker.postMessage(make(request))
    return d.promise as Promise<T>
  }

  private onReply(m: WriterReply): void {
    switch (m.kind) {
      case 'committed':
        this.spare = m.bytes
        this.inFlight.get(m.batch)?.resolve()
        this.inFlight.delete(m.batch)
        // What someone waits for goes out at once unless it may wait for company; the rest keeps gathering.
        if (this.pendingDone !== undefined) {
          const left = this.waitLeft()
          if (left === 0) this.flush()
          else this.flushWithin(left)
        } else if (this.pending.length > 0 || this.pendingState.size > 0) this.flushWithin(UNAWAITED_MS)
        break
      case 'write_failed':
        this.fail(new DurabilityError(this.opts.path, stripPrefix(m.problem, this.opts.path)))
        break
      case 'recovered':
        this.settle(m.request, m.recovery)
        break
      case 'found':
        this.settle(m.request, m.run)
        break
      case 'closed':
        this.settle(m.request, undefined)
        break
    }
  }

  private settle(request: number, value: unknown): void {
    this.requests.get(request)?.resolve(value)
    this.requests.delete(request)
  }

  /** Rejects every waiter: nothing more is acknowledged once a write failed. */
  private fail(err: DurabilityError): void {
    this.failure ??= err
    for (const d of this.inFlight.values()) d?.reject(err)
    this.inFlight.clear()
    this.pendingDone?.reject(err)
    this.pendingDone = undefined
    for (const d of this.requests.values()) d.reject(err)
    this.requests.clear()
  }
}

/** A writer-side message already names the file; keep only the problem. */
function stripPrefix(problem: string, path: string): string {
  const prefix = `durability.path ${JSON.stringify(path)}: `
  return problem.startsWith(prefix) ? problem.slice(prefix.length) : problem
}

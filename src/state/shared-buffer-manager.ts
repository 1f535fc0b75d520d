/**
 * `SharedBufferManager`: creates the state regions on the main thread, attaches them on workers, and
 * hands out one `StreamBuffer` per execution.
 *
 * Thread contract: `create` — main thread. `attach` — any thread, once per thread. `createBuffer`,
 * `recentChanges`, `stats` — any thread, never block. `cleanupExecution` / `cleanupStream` — any thread;
 * on a worker they may block briefly on the commit lock; on the main thread they never block (if a live
 * worker holds the lock past the spin budget, the cleanup is retried on a timer). `threadExited` — the
 * main thread, never blocks. `openLease` / `endLease` — the main thread, never block.
 *
 * Execution ends. The main thread opens a lease (`LeaseTable`) for each execution attempt it sends to a
 * worker and ends it when, for the main thread, that attempt is over — however it ended, its thread
 * terminated included. A buffer made with a lease checks it under the commit lock before every commit, so
 * once the lease is ended nothing more of that attempt is written (`ExecutionEndedError`), and the main
 * thread frees the execution scope if the buffer had used it. A worker that ends an attempt itself frees
 * that scope at once (`releaseBuffer`) and tells the lease, so the main thread has nothing left to do.
 *
 * @module
 */
import { isMainThread, threadId } from 'node:worker_threads'
import type { IsolationLevel } from '../config/index.js'
import { InvalidArgumentError } from '../errors.js'
import { CommitStatus, type Lease, LeaseEnd, LeaseTable, ShmStore } from '../shm/index.js'
import { BufferCore } from './buffer-core.js'
import {
  checkGroupId,
  decodeMeta,
  decodeName,
  GROUP_OVERHEAD,
  KeyGroup,
  MAX_ID_BYTES,
  META_OVERHEAD,
  scopeOfCode,
  ValueCodec,
} from './codec.js'
import { ConflictTurns } from './conflict-turns.js'
import { StreamBuffer } from './stream-buffer.js'
import type {
  BufferIsolation,
  StateChange,
  StateHandles,
  StateHooks,
  StateManagerOptions,
  StateStats,
} from './types.js'

const LEVELS: readonly IsolationLevel[] = ['isolated', 'shared', 'synchronized', 'serializable']
const DEFAULT_MAX_KEY_BYTES = 512
const DEFAULT_MAIN_SPIN_MS = 50
const MAIN_RETRY_MS = 5
/** Stream key groups cached per thread. */
const MAX_CACHED_STREAMS = 1024
const NO_META = new Uint8Array(0)
const NO_OPS = { writes: [], checks: [] }

/** A cleanup the main thread had to defer; `barrier`: take the commit lock once first (see `endLease`). */
interface PendingCleanup {
  group: KeyGroup
  barrier: boolean
}

/** The shared state of one runtime: every thread attaches the same regions. */
export class SharedBufferManager {
  /** Structured-clonable (SharedArrayBuffers and numbers): pass to workers, then {@link attach}. */
  readonly handles: StateHandles
  private readonly store: ShmStore
  /** Turns of `serializable` executions that keep conflicting (see `ConflictTurns`). */
  readonly turns: ConflictTurns
  private readonly codec: ValueCodec
  private readonly leases: LeaseTable
  private readonly globalGroup: KeyGroup
  /** Stream groups of this thread, shared by all its buffers so their key and head caches stay warm. */
  private readonly streamGroups = new Map<string, KeyGroup>()
  private readonly pendingCleanups = new Map<string, PendingCleanup>()
  private retryTimer: ReturnType<typeof setTimeout> | undefined
  private settledWaiters: (() => void)[] = []

  private constructor(handles: StateHandles, store: ShmStore, leases: LeaseTable) {
    this.handles = handles
    this.store = store
    this.leases = leases
    this.turns = new ConflictTurns(handles.turns, threadId)
    this.codec = new ValueCodec(handles.maxValueBytes)
    this.globalGroup = new KeyGroup('global', '', handles.maxKeyBytes)
  }

  /** Main thread: allocates the regions. Throws `InvalidArgumentError` naming a bad option. */
  static create(opts: StateManagerOptions): SharedBufferManager {
    if (opts === null || typeof opts !== 'object')
      throw new InvalidArgumentError('state options must be an object')
    const maxBytes = positiveInt('maxBytes', opts.maxBytes, 1 << 20)
    const maxKeys = positiveInt('maxKeys', opts.maxKeys, 1)
    const historySize = positiveInt('historySize', opts.historySize, 0)
    const maxKeyBytes = positiveInt('maxKeyBytes', opts.maxKeyBytes ?? DEFAULT_MAX_KEY_BYTES, 1)
    const maxValueBytes = positiveInt(
      'maxValueBytes',
      opts.maxValueBytes ?? Math.min(1 << 20, Math.floor(maxBytes / 8)),
      16,
    )
    const mainSpinMs = positiveInt('mainSpinMs', opts.mainSpinMs ?? DEFAULT_MAIN_SPIN_MS, 0)
    let store: ShmStore
    try {
      store = ShmStore.create(
        {
          maxBytes,
          maxKeys,
          historySize,
          maxKeyBytes: GROUP_OVERHEAD + MAX_ID_BYTES + maxKeyBytes + 1,
          maxMetaBytes: META_OVERHEAD + 2 * MAX_ID_BYTES,
        },
        { threadId, isMainThread, mainSpinMs },
      )
    } catch (err) {
      if (err instanceof RangeError)
        throw new InvalidArgumentError(`state options: ${err.message}`, { maxBytes, maxKeys })
      throw err
    }
    const leases = LeaseTable.create()
    return new SharedBufferManager(
      {
        store: store.handles,
        turns: ConflictTurns.allocate(),
        leases: leases.buffer,
        maxValueBytes,
        maxKeyBytes,
        historySize,
        mainSpinMs,
      },
      store,
      leases,
    )
  }

  /** Any worker thread: attaches to regions created on the main thread. */
  static attach(handles: StateHandles): SharedBufferManager {
    if (!handles?.store?.control)
      throw new InvalidArgumentError('SharedBufferManager.attach: not state handles')
    const store = ShmStore.attach(handles.store, { threadId, isMainThread, mainSpinMs: handles.mainSpinMs })
    return new SharedBufferManager(handles, store, LeaseTable.attach(handles.leases))
  }

  /**
   * A buffer for one execution of one stream. Any thread; cheap (no shared memory is touched). `lease`
   * (internal): the attempt's lease from {@link openLease}; once it is ended the buffer writes nothing.
   */
  createBuffer(
    executionId: string,
    streamId: string,
    isolation: BufferIsolation,
    hooks?: StateHooks,
    lease?: Lease,
  ): StreamBuffer {
    const levels = resolveIsolation(isolation)
    const h = this.handles
    checkGroupId('execution', idArg('executionId', executionId))
    const groups = { stream: this.streamGroup(idArg('streamId', streamId)), global: this.globalGroup }
    const core = new BufferCore(
      this.store,
      this.codec,
      executionId,
      streamId,
      groups,
      levels,
      h.maxKeyBytes,
      hooks,
      h.mainSpinMs,
      lease === undefined ? undefined : { table: this.leases, lease },
    )
    return new StreamBuffer(core)
  }

  /**
   * Ends `buffer`: from now on every write through it (or a narrowed copy) throws `ExecutionEndedError`
   * and stores nothing. Then frees what its execution stored in its execution scope, like
   * {@link cleanupExecution}, and nothing at all when it never used that scope. Same threads and blocking
   * as `cleanupExecution`.
   */
  releaseBuffer(buffer: StreamBuffer): void {
    const core = buffer.core
    core.end()
    if (!core.executionScopeUsed) return
    this.cleanupExecution(core.executionId)
    // Freed here: the main thread need not free it again when it ends the lease.
    if (core.lease !== undefined) core.lease.table.clearUsed(core.lease.lease)
  }

  /** Main thread, never blocks. Opens the lease of one execution attempt (pass it to `createBuffer`). */
  openLease(): Lease {
    return this.leases.open()
  }

  /**
   * Main thread, never blocks. Ends `lease`: no buffer made with it commits anything from now on. If its
   * buffer used the execution scope and did not free it, frees `executionId`'s execution scope — after
   * taking the commit lock once, so that a commit admitted just before the end has landed and is freed too
   * (deferred to a timer if a live worker holds the lock past the spin budget). Idempotent.
   */
  endLease(lease: Lease, executionId: string): void {
    if (this.leases.end(lease) !== LeaseEnd.USED) return
    this.cleanupGroup(new KeyGroup('execution', executionId, this.handles.maxKeyBytes), true)
  }

  /**
   * Main thread, never blocks. Ends `lease` like {@link endLease} (if it is not ended yet) and frees it for
   * reuse: call once the thread that ran its attempt can no longer use it. Once per lease.
   */
  releaseLease(lease: Lease, executionId: string): void {
    this.endLease(lease, executionId)
    this.leases.release(lease)
  }

  /**
   * Main thread, never blocks. The commit lock's owner word (0 when free): the same word seen twice means
   * one holding lasted between the looks. With {@link leaseHolds}, for a lock watchdog.
   */
  lockWord(): number {
    return this.store.lockWord()
  }

  /** Main thread: milliseconds this thread spent spinning for the commit lock, in all. For a lock watchdog. */
  lockSpunMs(): number {
    return this.store.lockSpunMs()
  }

  /** Main thread. Whether the attempt of `lease` is the holder of the commit lock's `ownerWord`. */
  leaseHolds(lease: Lease, ownerWord: number): boolean {
    return this.leases.holds(lease, ownerWord)
  }

  /**
   * Frees every execution-scope key of `executionId`. Idempotent; a lock-free lookup and nothing else
   * when the execution stored nothing.
   */
  cleanupExecution(executionId: string): void {
    this.cleanupGroup(new KeyGroup('execution', idArg('executionId', executionId), this.handles.maxKeyBytes))
  }

  /** Frees every stream-scope key of `streamId`. Idempotent. */
  cleanupStream(streamId: string): void {
    this.cleanupGroup(this.streamGroup(idArg('streamId', streamId)))
  }

  /** Up to `limit` most recent stream/global changes, newest first (bounded by `historySize`). Any thread. */
  recentChanges(limit = this.handles.historySize): StateChange[] {
    if (!Number.isInteger(limit) || limit < 0)
      throw new InvalidArgumentError(`recentChanges(limit): limit must be an integer ≥ 0, got ${limit}`)
    return this.store.history(limit).map((e) => {
      const { executionId, streamId } = decodeMeta(e.meta)
      const change: StateChange = {
        key: decodeName(e.key, e.groupLen),
        scope: scopeOfCode[e.key[0]!] === 'global' ? 'global' : 'stream',
        old: e.truncated ? undefined : this.codec.decode(e.old),
        new: e.truncated ? undefined : this.codec.decode(e.new),
        executionId,
        streamId,
        timestamp: e.timestamp,
        version: e.version,
      }
      if (e.truncated) change.truncated = true
      return change
    })
  }

  /** Counters of the regions. Any thread, a snapshot. */
  stats(): StateStats {
    const s = this.store.stats()
    return {
      keys: s.keys,
      maxKeys: s.maxKeys,
      bytesUsed: s.bytesUsed,
      bytesReserved: s.bytesReserved,
      capacity: s.capacity,
      indexSlots: s.indexSlots,
      indexSlotsInUse: s.indexSlotsInUse,
      conflicts: s.conflicts,
      version: s.version,
    }
  }

  /**
   * Main thread: a pool thread died (terminated, crashed, exited). If it held the commit lock, the lock is
   * taken over and its commit completed (past the commit point) or rolled back (before it). Idempotent.
   * Returns what was done: `'idle'` when the thread held nothing.
   */
  threadExited(deadThreadId: number): 'idle' | 'rolled_back' | 'completed' {
    this.turns.releaseThread(deadThreadId)
    return this.store.threadExited(deadThreadId)
  }

  /**
   * Resolves once every cleanup the main thread had to defer (the lock was held by a live worker past
   * the spin budget) has run. Resolves at once when none is pending.
   */
  cleanupsSettled(): Promise<void> {
    if (this.pendingCleanups.size === 0) return Promise.resolve()
    return new Promise((resolve) => this.settledWaiters.push(resolve))
  }

  /** The store behind this manager (tests and benchmarks). @internal */
  get engine(): ShmStore {
    return this.store
  }

  private streamGroup(streamId: string): KeyGroup {
    let g = this.streamGroups.get(streamId)
    if (g === undefined) {
      if (this.streamGroups.size >= MAX_CACHED_STREAMS) this.streamGroups.clear()
      g = new KeyGroup('stream', streamId, this.handles.maxKeyBytes)
      this.streamGroups.set(streamId, g)
    }
    return g
  }

  /**
   * Deletes `group`'s keys. `barrier`: takes the commit lock once first, so every commit that took it
   * before (and may be adding to the group) has landed.
   */
  private cleanupGroup(group: KeyGroup, barrier = false): void {
    const done =
      (!barrier || this.store.commitLocked(() => NO_OPS, NO_META) !== CommitStatus.BUSY) &&
      this.store.deleteGroup(group.head)
    if (done) return
    // Main thread only (workers block instead): retry later rather than block the event loop. A barrier
    // that passed is not needed again, but taking the lock twice costs nothing worth a second flag.
    this.pendingCleanups.set(`${group.scope}:${group.id}`, { group, barrier })
    this.retryTimer ??= setTimeout(() => this.retryCleanups(), MAIN_RETRY_MS)
    this.retryTimer.unref?.()
  }

  private retryCleanups(): void {
    this.retryTimer = undefined
    const pending = [...this.pendingCleanups.values()]
    this.pendingCleanups.clear()
    for (const p of pending) this.cleanupGroup(p.group, p.barrier)
    if (this.pendingCleanups.size > 0) return
    const waiters = this.settledWaiters
    this.settledWaiters = []
    for (const resolve of waiters) resolve()
  }
}

function positiveInt(name: string, v: unknown, min: number): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) {
    throw new InvalidArgumentError(
      `state option ${name} must be an integer ≥ ${min}, got ${JSON.stringify(v)}`,
      { [name]: v },
    )
  }
  return v
}

function idArg(name: string, v: unknown): string {
  if (typeof v !== 'string')
    throw new InvalidArgumentError(`${name} must be a string, got ${typeof v}`, { [name]: v })
  return v
}

function level(where: string, v: unknown): IsolationLevel {
  if (v === undefined) return 'shared'
  if (!LEVELS.includes(v as IsolationLevel)) {
    throw new InvalidArgumentError(
      `isolation${where} must be one of ${LEVELS.join(', ')}, got ${JSON.stringify(v)}`,
    )
  }
  return v as IsolationLevel
}

function resolveIsolation(i: BufferIsolation): { stream: IsolationLevel; global: IsolationLevel } {
  if (typeof i === 'string') {
    const l = level('', i)
    return { stream: l, global: l }
  }
  if (i === null || typeof i !== 'object')
    throw new InvalidArgumentError(
      `isolation must be a level or { stream, global }, got ${JSON.stringify(i)}`,
    )
  return { stream: level('.stream', i.stream), global: level('.global', i.global) }
}

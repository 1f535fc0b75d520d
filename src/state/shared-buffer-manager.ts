/**
 * `SharedBufferManager`: creates the state regions on the main thread, attaches them on workers, and
 * hands out one `StreamBuffer` per execution.
 *
 * Thread contract: `create` — main thread. `attach` — any thread, once per thread. `createBuffer`,
 * `recentChanges`, `stats` — any thread, never block. `cleanupExecution` / `cleanupStream` — any thread;
 * on a worker they may block briefly on the commit lock; on the main thread they never block (if a live
 * worker holds the lock past the spin budget, the cleanup is retried on a timer). `threadExited` — the
 * main thread, never blocks.
 *
 * @module
 */
import { isMainThread, threadId } from 'node:worker_threads'
import type { IsolationLevel } from '../config/index.js'
import { InvalidArgumentError } from '../errors.js'
import { ShmStore } from '../shm/index.js'
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

/** The shared state of one runtime: every thread attaches the same regions. */
export class SharedBufferManager {
  /** Structured-clonable (SharedArrayBuffers and numbers): pass to workers, then {@link attach}. */
  readonly handles: StateHandles
  private readonly store: ShmStore
  /** Turns of `serializable` executions that keep conflicting (see `ConflictTurns`). */
  readonly turns: ConflictTurns
  private readonly codec: ValueCodec
  private readonly globalGroup: KeyGroup
  /** Stream groups of this thread, shared by all its buffers so their key and head caches stay warm. */
  private readonly streamGroups = new Map<string, KeyGroup>()
  private readonly pendingCleanups = new Map<string, KeyGroup>()
  private retryTimer: ReturnType<typeof setTimeout> | undefined
  private settledWaiters: (() => void)[] = []

  private constructor(handles: StateHandles, store: ShmStore) {
    this.handles = handles
    this.store = store
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
    return new SharedBufferManager(
      {
        store: store.handles,
        turns: ConflictTurns.allocate(),
        maxValueBytes,
        maxKeyBytes,
        historySize,
        mainSpinMs,
      },
      store,
    )
  }

  /** Any worker thread: attaches to regions created on the main thread. */
  static attach(handles: StateHandles): SharedBufferManager {
    if (!handles?.store?.control)
      throw new InvalidArgumentError('SharedBufferManager.attach: not state handles')
    const store = ShmStore.attach(handles.store, { threadId, isMainThread, mainSpinMs: handles.mainSpinMs })
    return new SharedBufferManager(handles, store)
  }

  /** A buffer for one execution of one stream. Any thread; cheap (no shared memory is touched). */
  createBuffer(
    executionId: string,
    streamId: string,
    isolation: BufferIsolation,
    hooks?: StateHooks,
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
    )
    return new StreamBuffer(core)
  }

  /**
   * Frees what `buffer`'s execution stored in its execution scope, like {@link cleanupExecution}, and
   * nothing at all when it never used that scope. Same threads and blocking as `cleanupExecution`.
   */
  releaseBuffer(buffer: StreamBuffer): void {
    if (buffer.executionScopeUsed) this.cleanupExecution(buffer.executionId)
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

  private cleanupGroup(group: KeyGroup): void {
    if (this.store.deleteGroup(group.head)) return
    // Main thread only (workers block instead): retry later rather than block the event loop.
    this.pendingCleanups.set(`${group.scope}:${group.id}`, group)
    this.retryTimer ??= setTimeout(() => this.retryCleanups(), MAIN_RETRY_MS)
    this.retryTimer.unref?.()
  }

  private retryCleanups(): void {
    this.retryTimer = undefined
    const groups = [...this.pendingCleanups.values()]
    this.pendingCleanups.clear()
    for (const g of groups) this.cleanupGroup(g)
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

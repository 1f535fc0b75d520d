/**
 * Public types of the state layer.
 *
 * @module
 */
import type { IsolationLevel } from '../config/index.js'
import type { StoreHandles } from '../shm/index.js'

/** Where a key lives: private to one execution, one per stream (entry point), or one for the runtime. */
export type StateScope = 'execution' | 'stream' | 'global'

/** The state scopes as a frozen object of their string values (`StateScope.STREAM === 'stream'`). */
export const StateScope = Object.freeze({
  EXECUTION: 'execution',
  STREAM: 'stream',
  GLOBAL: 'global',
} as const satisfies { [K in StateScope as Uppercase<K>]: K })

/** The scope option every `StreamBuffer` operation takes. */
export interface ScopeOption {
  /**
   * Reads (`read`, `has`, `readAll`) without a scope look in execution, then stream, then global — the
   * first hit wins. Writes (`write`, `update`, `delete`) without a scope go to the execution scope.
   */
  scope?: StateScope
}

/** A committed change to a stream or global key (execution-scope changes are not recorded). */
export interface StateChange {
  key: string
  scope: 'stream' | 'global'
  /** The value before the commit (`undefined` when the key was absent). */
  old: unknown
  /** The value after the commit (`undefined` when the key was deleted). */
  new: unknown
  executionId: string
  streamId: string
  /** Wall-clock time of the commit, ms since the epoch. */
  timestamp: number
  /** The commit's position in the global commit order (1, 2, …). */
  version: number
  /**
   * True when a value was left out (`old` / `new` then `undefined` for that side): in a `state_changed`
   * event, a side whose stored form is over {@link CHANGE_VALUE_MAX_BYTES}; in `recentChanges`, both sides
   * when they did not fit the history entry. `oldBytes` / `newBytes` still say how big they were.
   */
  truncated?: boolean
  /** Bytes the old value takes in the store (a number: 8; absent: 0). */
  oldBytes?: number
  /** Bytes the new value takes in the store (a number: 8; deleted: 0). */
  newBytes?: number
}

/**
 * Largest stored value (in bytes) a `state_changed` event carries; a larger old or new value is left out
 * and the change flagged `truncated`, so the record of any change the store accepts fits the record
 * channel, and a write never fails after its commit.
 */
export const CHANGE_VALUE_MAX_BYTES = 16 * 1024

/** A `synchronized` write refused, or a `serializable` execution's conflict, because a key it read changed. */
export interface StateConflictInfo {
  key: string
  scope: 'stream' | 'global'
  /** `synchronized`: a refused write; `serializable`: the execution's commit applied nothing and it re-runs. */
  level: 'synchronized' | 'serializable'
  executionId: string
  streamId: string
}

/** Callbacks a buffer calls on the thread that committed, after the commit lock is released. */
export interface StateHooks {
  /** Each committed stream/global change (the runtime forwards these as `state_changed` events). */
  onChange?(change: StateChange): void
  /** Each refused `synchronized` write and conflicting `serializable` attempt (forwarded as `state_conflict` events). */
  onConflict?(info: StateConflictInfo): void
}

/** Isolation of one buffer: one level for both shared scopes, or per scope (missing scopes: `shared`). */
export type BufferIsolation = IsolationLevel | { stream?: IsolationLevel; global?: IsolationLevel }

/** Sizes of the state regions. */
export interface StateManagerOptions {
  /** All regions together, in bytes (index, values, journal, history). */
  maxBytes: number
  /** Live keys over all scopes. */
  maxKeys: number
  /** Changes `recentChanges()` keeps. 0 keeps none. */
  historySize: number
  /** Largest encoded value in bytes. @default min(1 MiB, maxBytes / 8) */
  maxValueBytes?: number
  /** Longest key in UTF-8 bytes. @default 512 */
  maxKeyBytes?: number
  /** Main thread: longest spin for the commit lock before `StateBusyError`. @default 50 */
  mainSpinMs?: number
}

/** Structured-clonable handles a worker attaches with (`SharedBufferManager.attach`). */
export interface StateHandles {
  store: StoreHandles
  /** The `serializable` turn table (see `ConflictTurns`). */
  turns: SharedArrayBuffer
  /** The execution lease table (see `LeaseTable`). */
  leases: SharedArrayBuffer
  maxValueBytes: number
  maxKeyBytes: number
  historySize: number
  mainSpinMs: number
}

/** Counters of the state regions (a snapshot; concurrent commits may move them). */
export interface StateStats {
  /** Live keys over all scopes. */
  keys: number
  maxKeys: number
  /** Bytes in allocated key and value blocks. */
  bytesUsed: number
  /** Bytes of the value region carved so far (its high-water mark). */
  bytesReserved: number
  /** Most bytes the value region may grow to. */
  capacity: number
  /** Index slots and those in use (live keys, group heads, tombstones). */
  indexSlots: number
  indexSlotsInUse: number
  /** `synchronized` writes refused so far. */
  conflicts: number
  /** Commits so far (the global commit order). */
  version: number
}

/**
 * The store's memory layout: its regions, the control words, the sizes derived from the options, the
 * types that cross the store's API, and {@link StoreRegions} — the views every thread keeps over the
 * regions. The behaviour lives in the files that extend it, one job each: `store-recovery.ts` (the commit
 * lock and a dead holder's commit), `store-read.ts` (the lock-free read path), `store-commit.ts` (the
 * commit path, lock holder only), `store-audit.ts` (the consistency audit) and `store.ts` (the facade).
 *
 * Regions (each its own SharedArrayBuffer, all created by the main thread):
 *
 * | id | region  | holds                                                                   |
 * |----|---------|-------------------------------------------------------------------------|
 * | 0  | control | the commit lock, dead-thread table, counters, allocator words (below)   |
 * | 1  | index   | the {@link HashIndex} slots (fixed size, from `maxKeys`), then its move counter |
 * | 2  | data    | key and value blocks ({@link BlockAllocator}); growable up to the rest of `maxBytes` |
 * | 3  | history | the {@link HistoryRing} of recent commits                               |
 * | —  | journal | the {@link UndoJournal} of the commit in progress                       |
 *
 * Control region (Int32 words):
 *
 * | word      | meaning                                                      |
 * |-----------|--------------------------------------------------------------|
 * | 0..2      | commit lock ({@link AtomicsLock})                            |
 * | 3..67     | dead-thread table ({@link DeadThreadTable})                  |
 * | 68, 69    | commit version, high and low 32 bits (journaled)             |
 * | 70        | live keys (group heads not counted; journaled)               |
 * | 71        | index slots not EMPTY (live keys and group heads; journaled) |
 * | 72        | conflicts reported (`Atomics.add`, not part of any commit)   |
 * | 80..113   | allocator words ({@link BlockAllocator})                     |
 *
 * @module
 */
import { ALLOCATOR_WORDS, BlockAllocator } from './allocator.js'
import { HashIndex, indexBytes, indexSlotsFor, ValueTag } from './hash-index.js'
import { HistoryRing, historyBytes, historyEntryBytes, type RawValue } from './history-ring.js'
import { journalBytes, UndoJournal } from './journal.js'
import { AtomicsLock, DEAD_TABLE_WORDS, DeadThreadTable, LOCK_WORDS } from './lock.js'

export const R_CONTROL = 0
export const R_INDEX = 1
export const R_DATA = 2
export const R_HISTORY = 3

export const C_LOCK = 0
export const C_DEAD = C_LOCK + LOCK_WORDS
export const C_VERSION_HI = 68
if (C_DEAD + DEAD_TABLE_WORDS > C_VERSION_HI)
  throw new Error('control layout: the dead-thread table overlaps the counters')
export const C_VERSION_LO = 69
export const C_KEYS = 70
export const C_USED_SLOTS = 71
export const C_CONFLICTS = 72
export const C_ALLOC = 80
export const CONTROL_WORDS = C_ALLOC + ALLOCATOR_WORDS
/** Journal entries: bounds the words one commit may touch (about 30 per key). */
export const JOURNAL_ENTRIES = 1 << 15
/** Keys deleted per commit by {@link ShmStore.deleteGroup}. */
export const DELETE_CHUNK = 256
/** Reader retries before it checks whether a commit in its way belongs to a dead thread. */
export const READ_SPINS_BEFORE_CHECK = 1 << 12
/** Lock-free walks of a group before {@link ShmStore.readGroup} walks it under the commit lock. */
export const READ_GROUP_TRIES = 16

/** `expectSlot` of a write or check: no expectation (a blind write). */
export const EXPECT_ANY = -1
/** `expectSlot`: the key must be absent. */
export const EXPECT_ABSENT = -2

/** What a commit did. */
export const CommitStatus = {
  OK: 0,
  /** A write's or check's expected version did not hold; see `conflictAt`. Nothing was written. */
  CONFLICT: 1,
  /** Main thread only: the lock stayed held by a live thread for `mainSpinMs`. Nothing was written. */
  BUSY: 2,
  /** The data region reached its maximum. Nothing was written. */
  FULL_BYTES: 3,
  /** `maxKeys` live keys. Nothing was written. */
  FULL_KEYS: 4,
  /** The commit touches more words than the journal holds. Nothing was written. */
  TOO_LARGE: 5,
  /** Called from inside a `retry` callback of a commit on this thread (the lock is not re-entrant). */
  REENTRANT: 6,
  /** {@link ShmStore.updateInline} only: the key holds no inline number (or the step gave none). Nothing was written. */
  NOT_INLINE: 7,
  /** The index has no free slot (cannot happen while group heads ≤ live keys; a guard). Nothing was written. */
  FULL_INDEX: 8,
} as const
export type CommitStatus = (typeof CommitStatus)[keyof typeof CommitStatus]

/** The buffers a store lives in; structured-clonable, handed to workers. */
export interface StoreHandles {
  control: SharedArrayBuffer
  index: SharedArrayBuffer
  data: SharedArrayBuffer
  journal: SharedArrayBuffer
  history: SharedArrayBuffer
  maxKeys: number
}

/** Sizes of a store. All are upper bounds. */
export interface StoreOptions {
  /** All regions together, in bytes. */
  maxBytes: number
  /** Live keys. */
  maxKeys: number
  /** History entries kept. */
  historySize: number
  /** Longest key (`group ‖ name`) in bytes. */
  maxKeyBytes: number
  /** Longest commit meta in bytes (carried by history entries). */
  maxMetaBytes: number
}

/** Per-attach settings. */
export interface AttachOptions {
  /** The calling thread's id (`threadId` from node:worker_threads; main thread 0). */
  threadId: number
  /** True on the main thread: never `Atomics.wait`. */
  isMainThread: boolean
  /** Main thread: longest spin for the commit lock before BUSY. */
  mainSpinMs: number
}

export const NO_BYTES = new Uint8Array(0)
/** The new value a history entry records for a delete. */
export const DELETED: RawValue = Object.freeze({ tag: ValueTag.NONE, num: 0, bytes: undefined }) as RawValue

/**
 * A group's head key (`group ‖ 0xFF`) and hash, with this thread's cache of where the head lives. The
 * cache is trusted only while that slot still has the head's hash, the HEAD tag and the same key block;
 * otherwise the head is looked up again.
 */
export class HeadRef {
  slot = -1
  block = 0
  constructor(
    readonly key: Uint8Array,
    readonly hash: number,
  ) {}
}

const NO_HEAD = new HeadRef(NO_BYTES, 2)

/** One key written (or deleted) by a commit. Fill the inputs; the commit fills the outputs. */
export class WriteOp {
  /** `group ‖ name`, valid in `[0, keyLen)`. */
  key: Uint8Array = NO_BYTES
  keyLen = 0
  /** The key's bytes as whole words (an Int32 view of `key`'s buffer), when the caller has one: history copies them a word at a time. */
  keyWords: Int32Array | undefined = undefined
  hash = 0
  /** The key's group head. */
  head: HeadRef = NO_HEAD
  del = false
  tag: number = ValueTag.NONE
  num = 0
  bytes: Uint8Array | undefined = undefined
  /** {@link EXPECT_ANY}, {@link EXPECT_ABSENT}, or the slot the key was read in (with `expectSeq`). */
  expectSlot = EXPECT_ANY
  expectSeq = 0
  /** Write a history entry and capture the old value. */
  record = false
  /** Output: the key's slot after the commit (-1 when deleted or absent) and its sequence number. */
  outSlot = -1
  outSeq = 0
  /** Output (when `record`): the value before the commit. */
  readonly old: RawValue = { tag: ValueTag.NONE, num: 0, bytes: undefined }
  /** Internal: the slot found while validating. */
  found = -1
  /** Internal: where a lock-free lookup just before the lock saw the key (-1: not seen), and its seq. */
  hint = -1
  hintSeq = 0
}

/** A version a commit requires of a key it read but does not write. */
export interface ReadCheck {
  key: Uint8Array
  keyLen: number
  hash: number
  expectSlot: number
  expectSeq: number
}

/** Output of {@link ShmStore.get}. `bytes` is a view of a scratch buffer, valid until the next read. */
export class ReadOut {
  found = false
  slot = -1
  seq = 0
  tag: number = ValueTag.NONE
  num = 0
  bytes: Uint8Array | undefined = undefined
}

/** A member of a group, as {@link ShmStore.readGroup} returns it (bytes are copies). */
export interface GroupMember {
  name: Uint8Array
  slot: number
  seq: number
  value: RawValue
}

/** Counters of a store. */
export interface StoreStats {
  keys: number
  maxKeys: number
  bytesUsed: number
  bytesReserved: number
  capacity: number
  indexSlots: number
  indexSlotsInUse: number
  conflicts: number
  version: number
}

/**
 * Thrown by a main-thread read that kept finding its key mid-commit for longer than `mainSpinMs`. The
 * main thread learns that a committer died only from its event loop, so it must not spin on a read for ever.
 */
export class StoreBusy extends Error {
  constructor() {
    super('a commit to this key stayed in flight past the main thread spin budget')
  }
}

export class StoreFull extends Error {
  constructor(readonly status: CommitStatus) {
    super('store full')
  }
}

export const f64 = new Float64Array(1)
export const f64Words = new Int32Array(f64.buffer)

/**
 * The views one thread keeps over a store's regions, and its per-thread scratch. Extended, one job per
 * file, up to {@link ShmStore}; constructed only through `ShmStore.create`/`ShmStore.attach`.
 */
export class StoreRegions {
  readonly handles: StoreHandles
  protected readonly ctrl: Int32Array
  protected readonly lock: AtomicsLock
  protected readonly dead: DeadThreadTable
  protected readonly journal: UndoJournal
  protected readonly heap: BlockAllocator
  protected readonly index: HashIndex
  protected readonly ring: HistoryRing
  protected readonly maxKeys: number
  protected scratch = new Uint8Array(256)
  protected readonly oldOut = new ReadOut()
  protected readonly groupOut = new ReadOut()
  /** Blocks this commit replaced, freed at its end; `freeCount` of them are live. */
  protected pendingFrees = new Int32Array(64)
  protected freeCount = 0
  /** Conflicting write (index into writes) or check (writes.length + index) of the last CONFLICT. */
  conflictAt = -1
  /** True while this thread holds the commit lock inside {@link commit}. */
  protected inCommit = false
  /**
   * The off switch of the inline-number fast path ({@link applyInline}): when false, every commit takes
   * the general path. For tests that prove the two equal; on by default.
   */
  inlineFastPath = true
  /** Version and wall-clock time of this thread's last successful commit. */
  lastVersion = 0
  lastTimestamp = 0

  /** Main thread: how long a read may spin on a key mid-commit; -1 on workers (they wait out a dead committer). */
  protected readonly mainSpinMs: number
  protected constructor(handles: StoreHandles, opts: AttachOptions) {
    this.mainSpinMs = opts.isMainThread ? opts.mainSpinMs : -1
    this.handles = handles
    this.maxKeys = handles.maxKeys
    this.ctrl = new Int32Array(handles.control)
    const data = new Int32Array(handles.data)
    const index = new Int32Array(handles.index)
    const history = new Int32Array(handles.history)
    this.journal = new UndoJournal(new Int32Array(handles.journal), [this.ctrl, index, data, history])
    this.dead = new DeadThreadTable(this.ctrl, C_DEAD)
    this.lock = new AtomicsLock(
      this.ctrl,
      C_LOCK,
      this.dead,
      opts.threadId,
      opts.mainSpinMs,
      opts.isMainThread,
    )
    this.heap = new BlockAllocator(handles.data, this.ctrl, C_ALLOC, R_CONTROL, R_DATA, this.journal)
    this.index = new HashIndex(index, R_INDEX, this.heap, this.journal)
    this.ring = new HistoryRing(handles.history, R_HISTORY, this.journal)
  }
}

/** Main thread: allocates and lays out every region. Throws RangeError when `maxBytes` is too small. */
export function createRegions(o: StoreOptions): StoreHandles {
  const slots = indexSlotsFor(o.maxKeys)
  const entryBytes = historyEntryBytes(o.maxKeyBytes, o.maxMetaBytes)
  const fixed = {
    control: CONTROL_WORDS * 4,
    index: indexBytes(slots),
    journal: journalBytes(JOURNAL_ENTRIES),
    history: historyBytes(o.historySize, entryBytes),
  }
  const fixedTotal = fixed.control + fixed.index + fixed.journal + fixed.history
  const dataMax = Math.floor((o.maxBytes - fixedTotal) / 8) * 8
  if (dataMax < 64 * 1024) {
    throw new RangeError(
      `maxBytes ${o.maxBytes} leaves ${dataMax} bytes for values after the index (${fixed.index} bytes for ` +
        `maxKeys ${o.maxKeys}), journal and history (${fixed.history} bytes); raise maxBytes or lower maxKeys`,
    )
  }
  const handles: StoreHandles = {
    control: new SharedArrayBuffer(fixed.control),
    index: new SharedArrayBuffer(fixed.index),
    data: new SharedArrayBuffer(Math.min(dataMax, 1 << 20), { maxByteLength: dataMax }),
    journal: new SharedArrayBuffer(fixed.journal),
    history: new SharedArrayBuffer(fixed.history),
    maxKeys: o.maxKeys,
  }
  const ctrl = new Int32Array(handles.control)
  AtomicsLock.initialize(ctrl, C_LOCK)
  BlockAllocator.initialize(ctrl, C_ALLOC)
  UndoJournal.initialize(new Int32Array(handles.journal), JOURNAL_ENTRIES)
  HistoryRing.initialize(handles.history, o.historySize, entryBytes)
  return handles
}

/**
 * The shared key-value store: the regions, the commit protocol and its recovery. It knows nothing about
 * agents — keys are bytes (`group ‖ name`), values are numbers or opaque bytes, and a commit's `meta` is
 * opaque bytes that its history entries carry.
 *
 * Regions (each its own SharedArrayBuffer, all created by the main thread):
 *
 * | id | region  | holds                                                                   |
 * |----|---------|-------------------------------------------------------------------------|
 * | 0  | control | the commit lock, dead-thread table, counters, allocator words (below)   |
 * | 1  | index   | the {@link HashIndex} slots (fixed size, from `maxKeys`)                |
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
 * | 71        | index slots not EMPTY (live, heads, tombstones; journaled)   |
 * | 72        | conflicts reported (`Atomics.add`, not part of any commit)   |
 * | 80..113   | allocator words ({@link BlockAllocator})                     |
 *
 * The commit protocol: take the one commit lock (a commit takes it once, whatever keys it touches, so
 * lock order is fixed and commits cannot deadlock); if the journal is not idle, a thread died mid-commit
 * — recover it first; validate the expected versions; journal and apply every change with the touched
 * slots' sequence words odd; store the commit point; make the sequence words even; release. A commit that
 * fails validation or capacity is rolled back from the journal before the lock is released.
 *
 * Before taking the lock a commit looks its keys up lock-free, so the cache misses of a big index are
 * paid outside the critical section. A read-modify-write that loses the race may re-run its step once
 * under the lock (`commit`'s `retry`, `commitLocked`), so a hot key or a long transaction still finishes.
 *
 * The fast path: a single-key commit that replaces an inline number with an inline number (a counter)
 * knows every word it will change before it changes any, so it journals them in one batch and publishes
 * them with one store (`applyInline`); `updateInline` does the read, the step and that commit in one trip
 * through the lock. `inlineFastPath = false` turns it off, so tests can prove both paths equal.
 *
 * Thread contract: reads (`get`, `history`, `stats`) — any thread, lock-free, never block (they retry
 * while a commit on the same key is in flight, and after a long streak check whether its thread died).
 * `readGroup` — lock-free, unless writers keep moving the group: then it walks under the lock like a
 * commit. `commit`/`commitLocked`/`updateInline`/`deleteGroup` — any thread; on a worker they may block on the commit
 * lock (never forever: a dead holder is taken over); on the main thread they spin at most `mainSpinMs`
 * and return BUSY. `threadExited` — the main thread, never blocks.
 *
 * @module
 */
import { ALLOCATOR_WORDS, AllocatorFullError, BlockAllocator } from './allocator.js'
import {
  HashIndex,
  HEAD_MARK,
  hashBytes,
  indexSlotsFor,
  SLOT_BYTES,
  SLOT_WORDS,
  Slot,
  ValueTag,
} from './hash-index.js'
import {
  type HistoryEntry,
  HistoryRing,
  historyBytes,
  historyEntryBytes,
  type RawValue,
} from './history-ring.js'
import { JournalFullError, JournalState, journalBytes, UndoJournal } from './journal.js'
import { AtomicsLock, DEAD_TABLE_WORDS, DeadThreadTable, LOCK_WORDS } from './lock.js'

const R_CONTROL = 0
const R_INDEX = 1
const R_DATA = 2
const R_HISTORY = 3

const C_LOCK = 0
const C_DEAD = C_LOCK + LOCK_WORDS
const C_VERSION_HI = 68
if (C_DEAD + DEAD_TABLE_WORDS > C_VERSION_HI)
  throw new Error('control layout: the dead-thread table overlaps the counters')
const C_VERSION_LO = 69
const C_KEYS = 70
const C_USED_SLOTS = 71
const C_CONFLICTS = 72
const C_ALLOC = 80
const CONTROL_WORDS = C_ALLOC + ALLOCATOR_WORDS
/** Journal entries: bounds the words one commit may touch (about 30 per key). */
const JOURNAL_ENTRIES = 1 << 15
/** Keys deleted per commit by {@link ShmStore.deleteGroup}. */
const DELETE_CHUNK = 256
/** Reader retries before it checks whether a commit in its way belongs to a dead thread. */
const READ_SPINS_BEFORE_CHECK = 1 << 12
/** Lock-free walks of a group before {@link ShmStore.readGroup} walks it under the commit lock. */
const READ_GROUP_TRIES = 16
/** Slots that may be non-EMPTY, as a fraction of all slots. */
const MAX_FILL = 0.9

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
  /** `maxKeys` live keys, or the index has no free slot. Nothing was written. */
  FULL_KEYS: 4,
  /** The commit touches more words than the journal holds. Nothing was written. */
  TOO_LARGE: 5,
  /** Called from inside a `retry` callback of a commit on this thread (the lock is not re-entrant). */
  REENTRANT: 6,
  /** {@link ShmStore.updateInline} only: the key holds no inline number (or the step gave none). Nothing was written. */
  NOT_INLINE: 7,
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

const NO_BYTES = new Uint8Array(0)
/** The new value a history entry records for a delete. */
const DELETED: RawValue = Object.freeze({ tag: ValueTag.NONE, num: 0, bytes: undefined }) as RawValue

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

class StoreFull extends Error {
  constructor(readonly status: CommitStatus) {
    super('store full')
  }
}

const f64 = new Float64Array(1)
const f64Words = new Int32Array(f64.buffer)

/** Whether any of `writes` leaves a history entry. */
function recordsHistory(writes: readonly WriteOp[]): boolean {
  for (let i = 0; i < writes.length; i++) if (writes[i]!.record) return true
  return false
}

/** The engine behind `SharedBufferManager`: attach once per thread. */
export class ShmStore {
  readonly handles: StoreHandles
  private readonly ctrl: Int32Array
  private readonly lock: AtomicsLock
  private readonly dead: DeadThreadTable
  private readonly journal: UndoJournal
  private readonly heap: BlockAllocator
  private readonly index: HashIndex
  private readonly ring: HistoryRing
  private readonly maxKeys: number
  private scratch = new Uint8Array(256)
  private readonly oldOut = new ReadOut()
  private readonly groupOut = new ReadOut()
  /** Blocks this commit replaced, freed at its end; `freeCount` of them are live. */
  private pendingFrees = new Int32Array(64)
  private freeCount = 0
  /** Conflicting write (index into writes) or check (writes.length + index) of the last CONFLICT. */
  conflictAt = -1
  /** True while this thread holds the commit lock inside {@link commit}. */
  private inCommit = false
  /**
   * The off switch of the inline-number fast path ({@link applyInline}): when false, every commit takes
   * the general path. For tests that prove the two equal; on by default.
   */
  inlineFastPath = true
  /** Version and wall-clock time of this thread's last successful commit. */
  lastVersion = 0
  lastTimestamp = 0

  /** Main thread: how long a read may spin on a key mid-commit; -1 on workers (they wait out a dead committer). */
  private readonly mainSpinMs: number
  private constructor(handles: StoreHandles, opts: AttachOptions) {
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

  /** Main thread: allocates and lays out every region. Throws RangeError when `maxBytes` is too small. */
  static create(o: StoreOptions, attach: AttachOptions): ShmStore {
    const slots = indexSlotsFor(o.maxKeys)
    const entryBytes = historyEntryBytes(o.maxKeyBytes, o.maxMetaBytes)
    const fixed = {
      control: CONTROL_WORDS * 4,
      index: slots * SLOT_BYTES,
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
    return new ShmStore(handles, attach)
  }

  /** Any thread: attaches to regions made by {@link create}. */
  static attach(handles: StoreHandles, opts: AttachOptions): ShmStore {
    return new ShmStore(handles, opts)
  }

  /** Test-only fault injection: called after every journal entry with the entry count, and with -1 after the commit point. */
  set onJournalEntry(fn: ((entries: number) => void) | undefined) {
    this.journal.onEntry = fn
  }

  /**
   * Any thread, lock-free. Reads `key` into `out`; returns `out.found`. Retries while the key is mid-commit;
   * on the main thread at most `mainSpinMs`, then throws {@link StoreBusy}.
   */
  get(key: Uint8Array, len: number, hash: number, out: ReadOut): boolean {
    let deadline = 0
    for (let attempt = 1; ; attempt++) {
      if (attempt % READ_SPINS_BEFORE_CHECK === 0) {
        this.waitOutDeadCommit()
        if (this.mainSpinMs >= 0) {
          const now = performance.now()
          if (deadline === 0) deadline = now + this.mainSpinMs
          else if (now > deadline) throw new StoreBusy()
        }
      }
      const s = this.probe(key, len, hash, out)
      if (s === -2) continue
      if (s === -1) {
        out.found = false
        out.slot = -1
        out.seq = 0
        out.tag = ValueTag.NONE
        out.bytes = undefined
        return false
      }
      out.found = true
      out.slot = s
      out.seq = this.index.lastSeq
      return true
    }
  }

  /**
   * Any thread. Every member of the group whose head key is `headRef.key` (= `group ‖ 0xFF`), as one
   * consistent snapshot; empty when the group does not exist. Lock-free first; if commits to the group
   * keep moving its head for {@link READ_GROUP_TRIES} walks, the walk runs under the commit lock instead
   * (so a big group under a hot writer still gets read). `undefined` only on the main thread when that
   * lock stays held past `mainSpinMs` (BUSY).
   */
  readGroup(headRef: HeadRef): GroupMember[] | undefined {
    const { key: headKey, hash: headHash } = headRef
    const ix = this.index
    const a = ix.i32
    for (let attempt = 1; attempt <= READ_GROUP_TRIES; attempt++) {
      const head = ix.find(headKey, headKey.length, headHash)
      if (head === -2) continue
      if (head === -1) return []
      const hseq = Atomics.load(a, head * SLOT_WORDS + Slot.SEQ)
      if (hseq & 1) continue
      const members = this.walkGroup(head, headKey.length - 1)
      // The head's seq moves on every membership change and each member's seq on every change to its value:
      // all of them unchanged after the walk means every member held what the walk copied at one instant.
      if (
        members !== undefined &&
        Atomics.load(a, head * SLOT_WORDS + Slot.SEQ) === hseq &&
        this.membersUnchanged(members)
      )
        return members
    }
    const held = this.inCommit
    if (!held && !this.acquire()) return undefined
    try {
      const head = ix.findForInsert(headKey, headKey.length, headHash)
      return head < 0 ? [] : (this.walkGroup(head, headKey.length - 1) ?? [])
    } finally {
      if (!held) this.lock.release()
    }
  }

  /** Whether every member's seq is still the one {@link walkGroup} read (its value unchanged since). */
  private membersUnchanged(members: readonly GroupMember[]): boolean {
    const a = this.index.i32
    for (const m of members) if (Atomics.load(a, m.slot * SLOT_WORDS + Slot.SEQ) !== m.seq) return false
    return true
  }

  /** Walks a group list from its head; `undefined` if the walk met something torn or mid-commit. */
  private walkGroup(head: number, groupLen: number): GroupMember[] | undefined {
    const a = this.index.i32
    const out = this.groupOut
    const members: GroupMember[] = []
    for (
      let m = a[head * SLOT_WORDS + Slot.NEXT]!, steps = 0;
      m !== 0;
      m = a[(m - 1) * SLOT_WORDS + Slot.NEXT]!, steps++
    ) {
      const at = (m - 1) * SLOT_WORDS
      const seq = Atomics.load(a, at + Slot.SEQ)
      if (steps > this.index.slots || seq & 1 || !this.readValue(at, out)) return undefined
      const key = this.index.keyBytes(at)
      if (key === undefined || key.length < groupLen) return undefined
      members.push({
        name: key.subarray(groupLen),
        slot: m - 1,
        seq,
        value: { tag: out.tag, num: out.num, bytes: out.bytes?.slice() },
      })
    }
    return members
  }

  /**
   * Any thread. Applies `writes` (distinct keys) all or nothing, provided every expected version — of
   * the writes and of `checks` — still holds. May block on a worker (see the module contract).
   *
   * `retry`, if given, runs once under the lock when validation fails: it may refill the ops from fresh
   * reads (lock-free reads work there), and the commit validates again. It must not commit (that returns
   * REENTRANT). It saves a second trip through the lock for a hot key's read-modify-write.
   */
  commit(
    writes: readonly WriteOp[],
    checks: readonly ReadCheck[],
    meta: Uint8Array,
    retry?: () => void,
  ): CommitStatus {
    if (this.inCommit) return CommitStatus.REENTRANT
    this.prelocate(writes)
    // The clock is read before the lock (it costs as much as a short commit), and only for a commit that
    // leaves history entries: their timestamps are the commit's start, within microseconds of its version.
    const now = recordsHistory(writes) ? Date.now() : 0
    if (!this.acquire()) return CommitStatus.BUSY
    this.inCommit = true
    try {
      if (!this.validate(writes, checks)) {
        if (retry === undefined) return CommitStatus.CONFLICT
        retry()
        if (!this.validate(writes, checks)) return CommitStatus.CONFLICT
      }
      if (
        this.inlineFastPath &&
        writes.length === 1 &&
        checks.length === 0 &&
        this.applyInline(writes[0]!, meta, now)
      )
        return CommitStatus.OK
      return this.applyAll(writes, meta, now)
    } finally {
      this.inCommit = false
      this.lock.release()
    }
  }

  /**
   * Any thread. The read-modify-write of a key that holds an inline number, all under the commit lock:
   * finds `w`'s key (trying `w.hint` first), reads its number, calls `step(current)` and, when that returns
   * true having set `w.tag`/`w.num` to an inline number, commits it through the inline fast path. No
   * optimistic read, so no lost race to redo: a hot counter costs one trip through the lock per update.
   * NOT_INLINE, having written nothing, when the key is absent, holds another kind of value, or `step`
   * returns false — the caller takes the general path. `step` runs with the lock held: it must be quick and
   * must not commit (that returns REENTRANT); if it throws, nothing is written. May block like {@link commit}.
   */
  updateInline(w: WriteOp, meta: Uint8Array, step: (current: number) => boolean): CommitStatus {
    if (this.inCommit) return CommitStatus.REENTRANT
    if (!this.inlineFastPath) return CommitStatus.NOT_INLINE
    // The clock only for a commit that leaves a history entry (it costs as much as the rest of the step).
    const now = w.record ? Date.now() : 0
    if (!this.acquire()) return CommitStatus.BUSY
    this.inCommit = true
    try {
      const ix = this.index
      const a = ix.i32
      const h = w.hint
      const s =
        h >= 0 && a[h * SLOT_WORDS] === w.hash && ix.keyAt(h * SLOT_WORDS, w.key, w.keyLen)
          ? h
          : ix.findForInsert(w.key, w.keyLen, w.hash)
      if (s < 0) return CommitStatus.NOT_INLINE
      const at = s * SLOT_WORDS
      const tag = a[at + Slot.TAG]!
      if (tag !== ValueTag.INT && tag !== ValueTag.F64) return CommitStatus.NOT_INLINE
      if (!step(this.inlineNumber(at, tag))) return CommitStatus.NOT_INLINE
      w.found = s
      return this.applyInline(w, meta, now) ? CommitStatus.OK : CommitStatus.NOT_INLINE
    } finally {
      this.inCommit = false
      this.lock.release()
    }
  }

  /** The INT or F64 number of the slot at word `at`. */
  private inlineNumber(at: number, tag: number): number {
    const a = this.index.i32
    if (tag === ValueTag.INT) return a[at + Slot.V0]!
    f64Words[0] = a[at + Slot.V0]!
    f64Words[1] = a[at + Slot.V1]!
    return f64[0]!
  }

  /**
   * Any thread. Like {@link commit}, but `build` runs under the commit lock and returns the ops: what it
   * reads cannot change before they apply. For a transaction that keeps losing optimistic races. An empty
   * `writes` commits nothing and returns OK.
   */
  commitLocked(
    build: () => { writes: readonly WriteOp[]; checks: readonly ReadCheck[] },
    meta: Uint8Array,
  ): CommitStatus {
    if (this.inCommit) return CommitStatus.REENTRANT
    if (!this.acquire()) return CommitStatus.BUSY
    this.inCommit = true
    try {
      const { writes, checks } = build()
      if (writes.length === 0) return CommitStatus.OK
      if (!this.validate(writes, checks)) return CommitStatus.CONFLICT
      return this.applyAll(writes, meta, Date.now())
    } finally {
      this.inCommit = false
      this.lock.release()
    }
  }

  /** Any thread. Deletes every member of a group, in commits of a bounded size. False only on BUSY. */
  deleteGroup(headRef: HeadRef): boolean {
    if (this.inCommit) throw new Error('state cleanup cannot run inside an update or transaction function')
    const { key: headKey, hash: headHash } = headRef
    const ix = this.index
    for (;;) {
      if (ix.find(headKey, headKey.length, headHash) === -1) return true
      if (!this.acquire()) return false
      try {
        const head = ix.findForInsert(headKey, headKey.length, headHash)
        if (head < 0) return true
        this.journal.begin()
        try {
          for (let n = 0; n < DELETE_CHUNK; n++) {
            const first = ix.get(head, Slot.NEXT)
            if (first === 0) break
            ix.touch(first - 1)
            ix.touch(head)
            this.deleteSlot(first - 1, head)
          }
          this.flushFrees()
          this.bumpVersion()
        } catch (err) {
          this.freeCount = 0
          this.journal.rollback()
          throw err
        }
        this.journal.commitPoint()
        this.journal.finish()
      } finally {
        this.lock.release()
      }
    }
  }

  /** Any thread. Up to `limit` most recent history entries, newest first. */
  history(limit: number): HistoryEntry[] {
    return this.ring.read(limit)
  }

  /** Any thread, racy snapshot. */
  stats(): StoreStats {
    const c = this.ctrl
    return {
      keys: Atomics.load(c, C_KEYS),
      maxKeys: this.maxKeys,
      bytesUsed: this.heap.usedBytes(),
      bytesReserved: this.heap.topBytes(),
      capacity: this.handles.data.maxByteLength,
      indexSlots: this.index.slots,
      indexSlotsInUse: Atomics.load(c, C_USED_SLOTS),
      conflicts: Atomics.load(c, C_CONFLICTS),
      version: this.version(),
    }
  }

  /** Any thread. Commits so far. */
  version(): number {
    for (;;) {
      const hi = Atomics.load(this.ctrl, C_VERSION_HI)
      const lo = Atomics.load(this.ctrl, C_VERSION_LO)
      if (Atomics.load(this.ctrl, C_VERSION_HI) === hi) return hi * 2 ** 32 + (lo >>> 0)
    }
  }

  /** Any thread, never blocks. Counts a reported conflict. */
  countConflict(): void {
    Atomics.add(this.ctrl, C_CONFLICTS, 1)
  }

  /**
   * Main thread, never blocks. Records that `threadId` exited; if it held the commit lock, takes the lock
   * over, completes or rolls back its commit, and releases the lock. Idempotent.
   */
  threadExited(threadId: number): 'idle' | 'rolled_back' | 'completed' {
    this.dead.add(threadId)
    if (this.lock.owner() !== threadId || !this.lock.takeOverIfDead()) return 'idle'
    try {
      return this.journal.recover()
    } finally {
      this.lock.release()
    }
  }

  /**
   * Consistency audit for tests and tools: takes the commit lock (recovering a dead holder's commit
   * first) and checks the index, group lists, counters and allocator against each other. Returns the
   * problems found; an empty list means consistent. Any thread; blocks like a commit.
   */
  audit(): string[] {
    if (!this.acquire()) return ['commit lock busy']
    try {
      const problems: string[] = []
      const ix = this.index
      const allocated: [number, number][] = []
      const blockOf = (b: number) => [b, this.heap.i32[2 * b]!] as [number, number]
      let live = 0
      let used = 0
      const memberOf = new Map<number, number>()
      for (let s = 0; s < ix.slots; s++) {
        const h = ix.get(s, Slot.HASH)
        if (h === 0) continue
        used++
        if (ix.get(s, Slot.SEQ) & 1) problems.push(`slot ${s} has an odd seq`)
        if (h === 1) continue
        if (ix.get(s, Slot.KEY) > 0) allocated.push(blockOf(ix.get(s, Slot.KEY)))
        const tag = ix.get(s, Slot.TAG)
        if (tag === ValueTag.BYTES) allocated.push(blockOf(ix.get(s, Slot.V0)))
        if (tag === ValueTag.HEAD) {
          let n = 0
          for (let m = ix.get(s, Slot.NEXT); m !== 0 && n <= ix.slots; m = ix.get(m - 1, Slot.NEXT), n++) {
            memberOf.set(m - 1, s)
          }
          if (n !== ix.get(s, Slot.V0))
            problems.push(`group head ${s} counts ${ix.get(s, Slot.V0)} members, lists ${n}`)
        } else {
          live++
        }
      }
      for (let s = 0; s < ix.slots; s++) {
        const h = ix.get(s, Slot.HASH)
        if (h > 1 || h < 0) {
          if (ix.get(s, Slot.TAG) !== ValueTag.HEAD && !memberOf.has(s))
            problems.push(`slot ${s} is in no group list`)
        }
      }
      if (live !== this.ctrl[C_KEYS]) problems.push(`keys counter ${this.ctrl[C_KEYS]}, live slots ${live}`)
      if (used !== this.ctrl[C_USED_SLOTS])
        problems.push(`used-slots counter ${this.ctrl[C_USED_SLOTS]}, non-empty ${used}`)
      problems.push(...this.heap.audit(allocated))
      return problems
    } finally {
      this.lock.release()
    }
  }

  /** Any thread. Whether a thread currently holds the commit lock, and which. -1 when free. */
  lockOwner(): number {
    return this.lock.owner()
  }

  private acquire(): boolean {
    if (!this.lock.acquire()) return false
    // A non-idle journal under a freshly taken lock means its last holder died mid-commit.
    if (this.journal.stateLocked() !== JournalState.IDLE) this.journal.recover()
    return true
  }

  /** A reader stuck behind an odd sequence word: if the commit's thread died, recover it. */
  private waitOutDeadCommit(): void {
    if (this.lock.owner() < 0 || !this.lock.takeOverIfDead()) return
    try {
      this.journal.recover()
    } finally {
      this.lock.release()
    }
  }

  /**
   * Lock-free: finds `key` and copies its value into `out` under one seqlock window per candidate slot.
   * The slot, -1 when absent, -2 when a commit was in the way (retry); `index.lastSeq` is the seq read.
   */
  private probe(key: Uint8Array, len: number, hash: number, out: ReadOut): number {
    const ix = this.index
    const a = ix.i32
    const mask = ix.slots - 1
    for (let n = 0, s = hash & mask; n < ix.slots; n++, s = (s + 1) & mask) {
      const at = s * SLOT_WORDS
      const h = Atomics.load(a, at)
      if (h === 0) return -1
      if (h !== hash) continue
      const seq = Atomics.load(a, at + Slot.SEQ)
      if (seq & 1) return -2
      const same = ix.keyAt(at, key, len)
      if (same && !this.readValue(at, out)) return -2
      // Same even seq after the copy: the key, tag and value bytes were one committed version.
      if (Atomics.load(a, at + Slot.SEQ) !== seq || a[at] !== hash) return -2
      if (same) {
        ix.lastSeq = seq
        return s
      }
    }
    return -1
  }

  /** Copies the value of the slot at word `at` into `out` (tag, num, bytes in scratch). */
  private readValue(at: number, out: ReadOut): boolean {
    const a = this.index.i32
    const tag = a[at + Slot.TAG]!
    out.tag = tag
    out.bytes = undefined
    if (tag === ValueTag.INT) out.num = a[at + Slot.V0]!
    else if (tag === ValueTag.F64) {
      f64Words[0] = a[at + Slot.V0]!
      f64Words[1] = a[at + Slot.V1]!
      out.num = f64[0]!
    } else if (tag === ValueTag.BYTES) {
      const b = a[at + Slot.V0]!
      const len = this.heap.blockLength(b)
      if (len < 0) return false
      if (len > this.scratch.length) this.scratch = new Uint8Array(Math.max(len, this.scratch.length * 2))
      const off = this.heap.payloadOffset(b)
      this.scratch.set(this.heap.u8.subarray(off, off + len))
      out.bytes = this.scratch.subarray(0, len)
    } else if (tag !== ValueTag.NONE && tag !== ValueTag.HEAD) return false
    return true
  }

  /**
   * Before the lock: finds, lock-free, the keys a commit will search for (blind writes, expected-absent
   * keys). The lookup pulls their slots and key blocks into this core's cache outside the critical
   * section, and an unchanged seq under the lock then proves the slot without a second key comparison.
   */
  private prelocate(writes: readonly WriteOp[]): void {
    const ix = this.index
    for (let i = 0; i < writes.length; i++) {
      const w = writes[i]!
      w.hint = -1
      if (w.expectSlot >= 0) continue
      const s = ix.find(w.key, w.keyLen, w.hash)
      if (s >= 0) {
        w.hint = s
        w.hintSeq = ix.lastSeq
      }
    }
  }

  /**
   * Lock holder. Where the key is now (slot, or -1 when absent) if it meets its expectation, else -2.
   * A key expected (or hinted) in slot `s` with seq `q` needs no search: every change to a slot moves its
   * seq, so an unchanged seq means the slot still holds that key, unchanged.
   */
  private locate(
    key: Uint8Array,
    keyLen: number,
    hash: number,
    expectSlot: number,
    expectSeq: number,
    hint = -1,
    hintSeq = 0,
  ): number {
    if (expectSlot >= 0) return this.index.get(expectSlot, Slot.SEQ) === expectSeq ? expectSlot : -2
    if (hint >= 0 && this.index.get(hint, Slot.SEQ) === hintSeq)
      return expectSlot === EXPECT_ABSENT ? -2 : hint
    const s = this.index.findForInsert(key, keyLen, hash)
    if (expectSlot === EXPECT_ABSENT && s >= 0) return -2
    return s >= 0 ? s : -1
  }

  private validate(writes: readonly WriteOp[], checks: readonly ReadCheck[]): boolean {
    for (let i = 0; i < writes.length; i++) {
      const w = writes[i]!
      w.found = this.locate(w.key, w.keyLen, w.hash, w.expectSlot, w.expectSeq, w.hint, w.hintSeq)
      if (w.found === -2) {
        this.conflictAt = i
        return false
      }
    }
    for (let i = 0; i < checks.length; i++) {
      const c = checks[i]!
      if (this.locate(c.key, c.keyLen, c.hash, c.expectSlot, c.expectSeq) === -2) {
        this.conflictAt = writes.length + i
        return false
      }
    }
    return true
  }

  /**
   * Lock holder, validated. The fast path of a single-key commit that overwrites an inline number with an
   * inline number (a counter's `update`, a numeric `write`): every word it changes is known up front, so
   * they are journaled in one batch (one publishing store, see `UndoJournal.stage`) and written with plain
   * stores between odd and even sequence words. False, having changed nothing, when `w` does not qualify.
   */
  private applyInline(w: WriteOp, meta: Uint8Array, now: number): boolean {
    const s = w.found
    if (s < 0 || w.del || (w.tag !== ValueTag.INT && w.tag !== ValueTag.F64)) return false
    const a = this.index.i32
    const at = s * SLOT_WORDS
    const tag = a[at + Slot.TAG]!
    if (tag !== ValueTag.INT && tag !== ValueTag.F64) return false
    const lo = (this.ctrl[C_VERSION_LO]! >>> 0) + 1
    if (lo > 0xffffffff) return false
    if (w.record) {
      const old = w.old
      old.tag = tag
      old.bytes = undefined
      old.num = this.inlineNumber(at, tag)
    }
    const j = this.journal
    // Only the words that change: an integer over an integer moves the seq, one value word and the version.
    const f = w.tag === ValueTag.F64
    j.stageSeq(R_INDEX, at + Slot.SEQ)
    if (tag !== w.tag) j.stage(R_INDEX, at + Slot.TAG)
    j.stage(R_INDEX, at + Slot.V0)
    if (f) j.stage(R_INDEX, at + Slot.V1)
    j.stage(R_CONTROL, C_VERSION_LO)
    const history = w.record && this.ring.stageAppend()
    j.publish()
    const seq = a[at + Slot.SEQ]!
    // Odd before the value words change: a lock-free reader of the key (or its group) retries meanwhile.
    // The group head's seq stays: membership does not change, and group reads check each member's seq.
    Atomics.store(a, at + Slot.SEQ, seq + 1)
    if (!f) a[at + Slot.V0] = w.num | 0
    else {
      f64[0] = w.num
      a[at + Slot.V0] = f64Words[0]!
      a[at + Slot.V1] = f64Words[1]!
    }
    if (tag !== w.tag) a[at + Slot.TAG] = w.tag
    this.ctrl[C_VERSION_LO] = lo | 0
    const version = this.ctrl[C_VERSION_HI]! * 2 ** 32 + lo
    if (history) this.ring.appendStaged(now, version, w.key, w.keyLen, w.head.key.length - 1, meta, w.old, w)
    j.commitPoint()
    // Even again: publishes the new value (and the history entry's) to readers.
    Atomics.store(a, at + Slot.SEQ, seq + 2)
    if (history) this.ring.finishStaged()
    j.idle()
    this.lastVersion = version
    this.lastTimestamp = now
    w.outSlot = s
    w.outSeq = seq + 2
    return true
  }

  private applyAll(writes: readonly WriteOp[], meta: Uint8Array, now: number): CommitStatus {
    const j = this.journal
    j.begin()
    try {
      for (const w of writes) this.apply(w)
      this.flushFrees()
      const version = this.bumpVersion()
      this.lastVersion = version
      this.lastTimestamp = now
      for (const w of writes) {
        if (!w.record || (w.del && w.old.tag === ValueTag.NONE)) continue
        const nv: RawValue = w.del ? DELETED : w
        this.ring.append(now, version, w.key, w.keyLen, w.head.key.length - 1, meta, w.old, nv)
      }
    } catch (err) {
      this.freeCount = 0
      j.rollback()
      if (err instanceof StoreFull) return err.status
      if (err instanceof AllocatorFullError) return CommitStatus.FULL_BYTES
      if (err instanceof JournalFullError) return CommitStatus.TOO_LARGE
      throw err
    }
    j.commitPoint()
    j.finish()
    return CommitStatus.OK
  }

  private apply(w: WriteOp): void {
    const ix = this.index
    let s = w.found >= 0 ? w.found : -1
    if (w.record) this.captureOld(w, s)
    if (s >= 0) {
      const head = this.headSlot(w)
      ix.touch(s)
      ix.touch(head)
      if (w.del) {
        this.deleteSlot(s, head)
        w.outSlot = -1
        w.outSeq = 0
        return
      }
      this.setValue(s, w)
    } else {
      if (w.del) {
        w.outSlot = -1
        w.outSeq = 0
        return
      }
      if (this.ctrl[C_KEYS]! >= this.maxKeys) throw new StoreFull(CommitStatus.FULL_KEYS)
      let head = this.headSlot(w)
      if (head < 0) head = this.insertHead(w)
      s = this.claimSlot(ix.findForInsert(w.key, w.keyLen, w.hash))
      ix.touch(s)
      ix.touch(head)
      ix.storeKey(s, w.key, w.keyLen)
      ix.set(s, Slot.HASH, w.hash)
      ix.set(s, Slot.TAG, ValueTag.NONE)
      this.setValue(s, w)
      ix.link(head, s)
      ix.set(head, Slot.V0, ix.get(head, Slot.V0) + 1)
      this.journal.set(R_CONTROL, C_KEYS, this.ctrl[C_KEYS]! + 1)
    }
    w.outSlot = s
    // The slot's seq is odd now; finish() makes it even, which is the version later reads will see.
    w.outSeq = ix.get(s, Slot.SEQ) + 1
  }

  private captureOld(w: WriteOp, s: number): void {
    const old = w.old
    old.bytes = undefined
    old.num = 0
    if (s < 0) {
      old.tag = ValueTag.NONE
      return
    }
    const out = this.oldOut
    this.readValue(s * SLOT_WORDS, out)
    old.tag = out.tag
    old.num = out.num
    old.bytes = out.bytes?.slice()
  }

  /** Lock holder. The slot of `w`'s group head, or -1. */
  private headSlot(w: WriteOp): number {
    const h = w.head
    const ix = this.index
    if (h.slot >= 0 && ix.get(h.slot, Slot.HASH) === h.hash && ix.get(h.slot, Slot.TAG) === ValueTag.HEAD) {
      const k = ix.get(h.slot, Slot.KEY)
      if (k > 0 ? k === h.block : ix.keyAt(h.slot * SLOT_WORDS, h.key, h.key.length)) return h.slot
    }
    const s = ix.findForInsert(h.key, h.key.length, h.hash)
    if (s < 0) return -1
    h.slot = s
    h.block = ix.get(s, Slot.KEY)
    return s
  }

  private insertHead(w: WriteOp): number {
    const ix = this.index
    const h = w.head
    const s = this.claimSlot(ix.findForInsert(h.key, h.key.length, h.hash))
    ix.touch(s)
    h.slot = s
    ix.storeKey(s, h.key, h.key.length)
    h.block = ix.get(s, Slot.KEY)
    ix.set(s, Slot.HASH, h.hash)
    ix.set(s, Slot.TAG, ValueTag.HEAD)
    ix.set(s, Slot.V0, 0)
    ix.set(s, Slot.NEXT, 0)
    ix.set(s, Slot.PREV, 0)
    return s
  }

  /** Turns findForInsert's "insert at" answer into a slot, counting a fresh slot against the fill limit. */
  private claimSlot(r: number): number {
    const s = -r - 1
    if (r >= 0 || s >= this.index.slots) throw new StoreFull(CommitStatus.FULL_KEYS)
    if (this.index.isEmpty(s)) {
      const used = this.ctrl[C_USED_SLOTS]! + 1
      if (used > this.index.slots * MAX_FILL) throw new StoreFull(CommitStatus.FULL_KEYS)
      this.journal.set(R_CONTROL, C_USED_SLOTS, used)
    }
    return s
  }

  private setValue(s: number, w: WriteOp): void {
    const ix = this.index
    if (ix.get(s, Slot.TAG) === ValueTag.BYTES) this.deferFree(ix.get(s, Slot.V0))
    if (w.tag === ValueTag.BYTES) {
      ix.set(s, Slot.V0, this.storeBytes(w.bytes!, w.bytes!.length))
    } else if (w.tag === ValueTag.F64) {
      f64[0] = w.num
      ix.set(s, Slot.V0, f64Words[0]!)
      ix.set(s, Slot.V1, f64Words[1]!)
    } else {
      ix.set(s, Slot.V0, w.num | 0)
    }
    ix.set(s, Slot.TAG, w.tag)
  }

  /** Allocates a block and copies `bytes[0, len)` into it (a fresh block: no journaling needed). */
  private storeBytes(bytes: Uint8Array, len: number): number {
    const b = this.heap.alloc(len)
    const off = this.heap.payloadOffset(b)
    this.heap.u8.set(len === bytes.length ? bytes : bytes.subarray(0, len), off)
    return b
  }

  /** Both `s` and `head` touched. Deletes member `s`, and the head when it was the last member. */
  private deleteSlot(s: number, head: number): void {
    const ix = this.index
    if (ix.get(s, Slot.KEY) > 0) this.deferFree(ix.get(s, Slot.KEY))
    if (ix.get(s, Slot.TAG) === ValueTag.BYTES) this.deferFree(ix.get(s, Slot.V0))
    ix.unlink(s)
    let freed = ix.remove(s)
    this.journal.set(R_CONTROL, C_KEYS, this.ctrl[C_KEYS]! - 1)
    const count = ix.get(head, Slot.V0) - 1
    ix.set(head, Slot.V0, count)
    if (count === 0) {
      if (ix.get(head, Slot.KEY) > 0) this.deferFree(ix.get(head, Slot.KEY))
      freed += ix.remove(head)
    }
    if (freed > 0) this.journal.set(R_CONTROL, C_USED_SLOTS, this.ctrl[C_USED_SLOTS]! - freed)
  }

  /** Frees the blocks this commit replaced — last, so that no block is reused within the commit. */
  private flushFrees(): void {
    for (let i = 0; i < this.freeCount; i++) this.heap.free(this.pendingFrees[i]!)
    this.freeCount = 0
  }

  private deferFree(b: number): void {
    if (this.freeCount === this.pendingFrees.length) {
      const grown = new Int32Array(this.pendingFrees.length * 2)
      grown.set(this.pendingFrees)
      this.pendingFrees = grown
    }
    this.pendingFrees[this.freeCount++] = b
  }

  private bumpVersion(): number {
    const lo = (this.ctrl[C_VERSION_LO]! >>> 0) + 1
    const hi = this.ctrl[C_VERSION_HI]! + (lo > 0xffffffff ? 1 : 0)
    if (lo > 0xffffffff) this.journal.set(R_CONTROL, C_VERSION_HI, hi)
    this.journal.set(R_CONTROL, C_VERSION_LO, lo | 0)
    return hi * 2 ** 32 + (lo >>> 0)
  }
}

export { HEAD_MARK, hashBytes, ValueTag }

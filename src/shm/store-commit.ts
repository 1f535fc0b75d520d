/**
 * The commit path. Everything here but the entry points runs with the commit lock held.
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
 * Thread contract: `commit`/`commitLocked`/`updateInline`/`deleteGroup` — any thread; on a worker they may
 * block on the commit lock (never forever: a dead holder is taken over); on the main thread they spin at
 * most `mainSpinMs` and return BUSY.
 *
 * @module
 */
import { AllocatorFullError } from './allocator.js'
import { MAX_LOAD, SLOT_WORDS, Slot, ValueTag } from './hash-index.js'
import type { RawValue } from './history-ring.js'
import { JournalFullError } from './journal.js'
import {
  C_KEYS,
  C_USED_SLOTS,
  C_VERSION_HI,
  C_VERSION_LO,
  CommitStatus,
  DELETE_CHUNK,
  DELETED,
  EXPECT_ABSENT,
  f64,
  f64Words,
  type HeadRef,
  R_CONTROL,
  R_INDEX,
  type ReadCheck,
  StoreFull,
  type WriteOp,
} from './store-layout.js'
import { StoreReader } from './store-read.js'

/** Whether any of `writes` leaves a history entry. */
function recordsHistory(writes: readonly WriteOp[]): boolean {
  for (let i = 0; i < writes.length; i++) if (writes[i]!.record) return true
  return false
}

export class StoreCommitter extends StoreReader {
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
   * finds `w`'s key (trying `w.hint`/`w.hintSeq` first), reads its number, calls `step(current)` and, when that returns
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
      // The hint is proven by an unchanged seq (every change to a slot moves it), else by the key itself.
      const h = w.hint
      const at = h * SLOT_WORDS
      const s =
        h >= 0 && (a[at + Slot.SEQ] === w.hintSeq || (a[at] === w.hash && ix.keyAt(at, w.key, w.keyLen)))
          ? h
          : ix.findForInsert(w.key, w.keyLen, w.hash)
      if (s < 0) return CommitStatus.NOT_INLINE
      const sat = s * SLOT_WORDS
      const tag = a[sat + Slot.TAG]!
      if (tag !== ValueTag.INT && tag !== ValueTag.F64) return CommitStatus.NOT_INLINE
      if (!step(this.inlineNumber(sat, tag))) return CommitStatus.NOT_INLINE
      w.found = s
      return this.applyInline(w, meta, now) ? CommitStatus.OK : CommitStatus.NOT_INLINE
    } finally {
      this.inCommit = false
      this.lock.release()
    }
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
          for (let n = 0; n < DELETE_CHUNK && !this.journal.nearlyFull(); n++) {
            const first = ix.get(head, Slot.NEXT)
            if (first === 0) break
            ix.touch(first - 1)
            ix.touch(head)
            this.deleteSlot(first - 1, head)
          }
          this.closeHoles(undefined)
          this.flushFrees()
          this.bumpVersion()
        } catch (err) {
          this.freeCount = 0
          ix.discardHoles()
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

  /**
   * Before the lock: finds, lock-free, the keys a commit will search for (blind writes, expected-absent
   * keys). The lookup pulls their slots and key blocks into this core's cache outside the critical
   * section, and an unchanged seq under the lock then proves the slot without a second key comparison.
   */
  protected prelocate(writes: readonly WriteOp[]): void {
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
  protected locate(
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

  protected validate(writes: readonly WriteOp[], checks: readonly ReadCheck[]): boolean {
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
  protected applyInline(w: WriteOp, meta: Uint8Array, now: number): boolean {
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
    if (history) this.ring.openStaged()
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
    if (history)
      this.ring.appendStaged(now, version, w.key, w.keyLen, w.keyWords, w.head.key.length - 1, meta, w.old, w)
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

  protected applyAll(writes: readonly WriteOp[], meta: Uint8Array, now: number): CommitStatus {
    const j = this.journal
    j.begin()
    try {
      for (const w of writes) this.apply(w)
      this.closeHoles(writes)
      this.flushFrees()
      const version = this.bumpVersion()
      this.lastVersion = version
      this.lastTimestamp = now
      for (const w of writes) {
        if (!w.record || (w.del && w.old.tag === ValueTag.NONE)) continue
        const nv: RawValue = w.del ? DELETED : w
        this.ring.append(now, version, w.key, w.keyLen, w.keyWords, w.head.key.length - 1, meta, w.old, nv)
      }
    } catch (err) {
      this.freeCount = 0
      this.index.discardHoles()
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

  protected apply(w: WriteOp): void {
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

  protected captureOld(w: WriteOp, s: number): void {
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
  protected headSlot(w: WriteOp): number {
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

  protected insertHead(w: WriteOp): number {
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
  protected claimSlot(r: number): number {
    const s = -r - 1
    if (r >= 0 || s >= this.index.slots) throw new StoreFull(CommitStatus.FULL_INDEX)
    if (this.index.isEmpty(s)) {
      const used = this.ctrl[C_USED_SLOTS]! + 1
      // Cannot happen while heads ≤ keys ≤ maxKeys (the index is sized for that); a guard, not a limit.
      if (used > this.index.slots * MAX_LOAD) throw new StoreFull(CommitStatus.FULL_INDEX)
      this.journal.set(R_CONTROL, C_USED_SLOTS, used)
    }
    return s
  }

  protected setValue(s: number, w: WriteOp): void {
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
  protected storeBytes(bytes: Uint8Array, len: number): number {
    const b = this.heap.alloc(len)
    const off = this.heap.payloadOffset(b)
    this.heap.u8.set(len === bytes.length ? bytes : bytes.subarray(0, len), off)
    return b
  }

  /** Both `s` and `head` touched. Deletes member `s`, and the head when it was the last member. */
  protected deleteSlot(s: number, head: number): void {
    const ix = this.index
    if (ix.get(s, Slot.KEY) > 0) this.deferFree(ix.get(s, Slot.KEY))
    if (ix.get(s, Slot.TAG) === ValueTag.BYTES) this.deferFree(ix.get(s, Slot.V0))
    ix.unlink(s)
    ix.remove(s)
    this.journal.set(R_CONTROL, C_KEYS, this.ctrl[C_KEYS]! - 1)
    const count = ix.get(head, Slot.V0) - 1
    ix.set(head, Slot.V0, count)
    if (count === 0) {
      if (ix.get(head, Slot.KEY) > 0) this.deferFree(ix.get(head, Slot.KEY))
      ix.remove(head)
    }
  }

  /**
   * Before the commit point: closes the holes this commit's deletes left in the index (keys after them
   * may move back; see `HashIndex.compact`), and re-finds the slot of every written key that moved.
   */
  protected closeHoles(writes: readonly WriteOp[] | undefined): void {
    const ix = this.index
    const emptied = ix.compact()
    if (emptied === 0) return
    this.journal.set(R_CONTROL, C_USED_SLOTS, this.ctrl[C_USED_SLOTS]! - emptied)
    if (ix.moved === 0 || writes === undefined) return
    for (const w of writes) {
      if (w.outSlot < 0) continue
      const at = w.outSlot * SLOT_WORDS
      if (ix.i32[at] === w.hash && ix.keyAt(at, w.key, w.keyLen)) continue
      const s = ix.findForInsert(w.key, w.keyLen, w.hash)
      w.outSlot = s
      // Moved into a touched slot: its seq is odd now, and finish() makes it even.
      w.outSeq = ix.get(s, Slot.SEQ) + 1
    }
  }

  /** Frees the blocks this commit replaced — last, so that no block is reused within the commit. */
  protected flushFrees(): void {
    for (let i = 0; i < this.freeCount; i++) this.heap.free(this.pendingFrees[i]!)
    this.freeCount = 0
  }

  protected deferFree(b: number): void {
    if (this.freeCount === this.pendingFrees.length) {
      const grown = new Int32Array(this.pendingFrees.length * 2)
      grown.set(this.pendingFrees)
      this.pendingFrees = grown
    }
    this.pendingFrees[this.freeCount++] = b
  }

  protected bumpVersion(): number {
    const lo = (this.ctrl[C_VERSION_LO]! >>> 0) + 1
    const hi = this.ctrl[C_VERSION_HI]! + (lo > 0xffffffff ? 1 : 0)
    if (lo > 0xffffffff) this.journal.set(R_CONTROL, C_VERSION_HI, hi)
    this.journal.set(R_CONTROL, C_VERSION_LO, lo | 0)
    return hi * 2 ** 32 + (lo >>> 0)
  }
}

/**
 * The lock-free read path: a key's value under its slot's sequence lock, a whole group as one snapshot,
 * the history ring, and the counters. Never takes the commit lock, except `readGroup` after a streak of
 * walks that writers kept invalidating (then it walks under the lock like a commit).
 *
 * Thread contract: every method — any thread, lock-free, never blocks (a read retries while a commit on
 * its key is in flight, and after a long streak checks whether that commit's thread died; on the main
 * thread it gives up with {@link StoreBusy} after `mainSpinMs`).
 *
 * @module
 */
import { SLOT_WORDS, Slot, ValueTag } from './hash-index.js'
import type { HistoryEntry } from './history-ring.js'
import {
  C_CONFLICTS,
  C_KEYS,
  C_USED_SLOTS,
  C_VERSION_HI,
  C_VERSION_LO,
  f64,
  f64Words,
  type GroupMember,
  type HeadRef,
  READ_GROUP_TRIES,
  READ_SPINS_BEFORE_CHECK,
  type ReadOut,
  StoreBusy,
  type StoreStats,
} from './store-layout.js'
import { StoreRecovery } from './store-recovery.js'

export class StoreReader extends StoreRecovery {
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
      const moves = ix.moves()
      const head = ix.find(headKey, headKey.length, headHash)
      if (head === -2) continue
      if (head === -1) return []
      const hseq = Atomics.load(a, head * SLOT_WORDS + Slot.SEQ)
      if (hseq & 1) continue
      const members = this.walkGroup(head, headKey.length - 1)
      // The head's seq moves on every membership change, each member's seq on every change to its value,
      // and the move counter whenever a delete moved a key to another slot: all of them unchanged after
      // the walk means every member held what the walk copied, in the slots it copied, at one instant.
      if (
        members !== undefined &&
        Atomics.load(a, head * SLOT_WORDS + Slot.SEQ) === hseq &&
        this.membersUnchanged(members) &&
        ix.unmoved(moves)
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
  protected membersUnchanged(members: readonly GroupMember[]): boolean {
    const a = this.index.i32
    for (const m of members) if (Atomics.load(a, m.slot * SLOT_WORDS + Slot.SEQ) !== m.seq) return false
    return true
  }

  /** Walks a group list from its head; `undefined` if the walk met something torn or mid-commit. */
  protected walkGroup(head: number, groupLen: number): GroupMember[] | undefined {
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

  /** The INT or F64 number of the slot at word `at`. */
  protected inlineNumber(at: number, tag: number): number {
    const a = this.index.i32
    if (tag === ValueTag.INT) return a[at + Slot.V0]!
    f64Words[0] = a[at + Slot.V0]!
    f64Words[1] = a[at + Slot.V1]!
    return f64[0]!
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
   * Lock-free: finds `key` and copies its value into `out` under one seqlock window per candidate slot.
   * The slot, -1 when absent, -2 when a commit was in the way (retry); `index.lastSeq` is the seq read.
   */
  protected probe(key: Uint8Array, len: number, hash: number, out: ReadOut): number {
    const ix = this.index
    const a = ix.i32
    const n = ix.slots
    const m = ix.moves()
    for (let i = 0, s = ix.home(hash); i < n; i++, s = s + 1 === n ? 0 : s + 1) {
      const at = s * SLOT_WORDS
      const h = Atomics.load(a, at)
      // Absent only if no commit moved a key meanwhile (it might have moved from ahead of us to behind).
      if (h === 0) return ix.unmoved(m) ? -1 : -2
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
    return ix.unmoved(m) ? -1 : -2
  }

  /** Copies the value of the slot at word `at` into `out` (tag, num, bytes in scratch). */
  protected readValue(at: number, out: ReadOut): boolean {
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
}

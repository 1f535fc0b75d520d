/**
 * An open-addressing (linear probing) hash index from a byte key to a slot, with a sequence lock per
 * slot so that readers never take a lock and never wait on another key, and an intrusive doubly linked
 * list per key group (the keys sharing a prefix, e.g. one scope of one stream) for enumeration and bulk
 * deletion.
 *
 * A key is `group ‖ name`. Each group present has one head slot, keyed `group ‖ 0xFF` (0xFF never occurs
 * in UTF-8, so no member name collides with it); the head's sequence word moves on every change to any
 * member, which makes a whole-group read a seqlock snapshot too.
 *
 * Slot layout (8 Int32 words per slot; slot `s` starts at word `8s` of the index region):
 *
 * | word | name | meaning                                                                              |
 * |------|------|--------------------------------------------------------------------------------------|
 * | 0    | hash | 0 = EMPTY (ends a probe), 1 = TOMBSTONE (deleted, probes continue), else the key hash |
 * | 1    | seq  | sequence lock: odd while a commit changes this slot; +2 per change, never reset        |
 * | 2    | key  | data-region block holding the key bytes                                               |
 * | 3    | tag  | {@link ValueTag} of the value                                                         |
 * | 4    | v0   | INT: the value; F64: low word; BYTES: the value's block; HEAD: member count            |
 * | 5    | v1   | F64: high word                                                                        |
 * | 6    | next | group list: next slot + 1 (0 = end); on a head, the first member                     |
 * | 7    | prev | group list: previous slot + 1 (the head for the first member)                         |
 *
 * Deletion leaves a tombstone; a tombstone followed by an EMPTY slot is turned back to EMPTY (with the
 * tombstones before it), which no probe can notice. Inserts reuse the first tombstone on their probe.
 *
 * Thread contract: `find`, `readSlot`, `keyEquals` — any thread, lock-free, never block (they return
 * `RETRY` rather than wait). Every method that changes a slot — only the commit lock holder, through the
 * journal; never blocks.
 *
 * @module
 */
import type { BlockAllocator } from './allocator.js'
import type { UndoJournal } from './journal.js'

/** Int32 words per slot. */
export const SLOT_WORDS = 8
/** Bytes per slot. */
export const SLOT_BYTES = SLOT_WORDS * 4

export const Slot = { HASH: 0, SEQ: 1, KEY: 2, TAG: 3, V0: 4, V1: 5, NEXT: 6, PREV: 7 } as const

/** How a slot holds its value. */
export const ValueTag = { NONE: 0, INT: 1, F64: 2, BYTES: 3, HEAD: 4 } as const

const EMPTY = 0
const TOMBSTONE = 1

/** The byte that closes a group head key. */
export const HEAD_MARK = 0xff

/** FNV-1a over `bytes[0, len)`, never 0 or 1 (those mark empty and deleted slots). */
export function hashBytes(bytes: Uint8Array, len: number): number {
  let h = 0x811c9dc5
  for (let i = 0; i < len; i++) h = Math.imul(h ^ bytes[i]!, 0x01000193)
  h ^= h >>> 16
  return h >>> 0 < 2 ? h + 2 : h | 0
}

/** Slots for a table that holds `keys` live keys (and their group heads) at a load factor ≤ 0.75. */
export function indexSlotsFor(keys: number): number {
  let n = 64
  while (n < keys * 1.5) n *= 2
  return n
}

export class HashIndex {
  readonly slots: number
  private readonly mask: number

  constructor(
    /** Int32 view of the index region. */
    readonly i32: Int32Array,
    private readonly region: number,
    private readonly heap: BlockAllocator,
    private readonly journal: UndoJournal,
  ) {
    this.slots = i32.length / SLOT_WORDS
    if (!Number.isInteger(this.slots) || (this.slots & (this.slots - 1)) !== 0) {
      throw new RangeError(`index region holds ${this.slots} slots; must be a power of two`)
    }
    this.mask = this.slots - 1
  }

  /** The (even) sequence number at which the last successful {@link find} on this thread validated its slot. */
  lastSeq = 0

  /**
   * Any thread, lock-free. The slot holding `key`, `-1` if absent, or `-2` (retry) when a commit touched
   * a slot on the way. Validates each candidate with its sequence word.
   */
  find(key: Uint8Array, len: number, hash: number): number {
    const a = this.i32
    for (let n = 0, s = hash & this.mask; n < this.slots; n++, s = (s + 1) & this.mask) {
      const at = s * SLOT_WORDS
      const h = Atomics.load(a, at)
      if (h === EMPTY) return -1
      if (h !== hash) continue
      // Seqlock read: an even seq before and the same seq after means key and hash belonged together.
      const seq = Atomics.load(a, at + Slot.SEQ)
      if (seq & 1) return -2
      const same = this.keyEquals(a[at + Slot.KEY]!, key, len)
      if (Atomics.load(a, at + Slot.SEQ) !== seq) return -2
      if (same && a[at] === hash) {
        this.lastSeq = seq
        return s
      }
    }
    return -1
  }

  /** Any thread. Whether the key block `b` holds `key[0, len)`; false for a torn pointer. */
  keyEquals(b: number, key: Uint8Array, len: number): boolean {
    if (this.heap.blockLength(b) !== len) return false
    const u8 = this.heap.u8
    const off = this.heap.payloadOffset(b)
    for (let i = 0; i < len; i++) if (u8[off + i] !== key[i]) return false
    return true
  }

  /** Lock holder. The slot holding `key` (≥ 0), or `-(slot + 1)` of where to insert it. */
  findForInsert(key: Uint8Array, len: number, hash: number): number {
    const a = this.i32
    let free = -1
    for (let n = 0, s = hash & this.mask; n < this.slots; n++, s = (s + 1) & this.mask) {
      const h = a[s * SLOT_WORDS]!
      if (h === EMPTY) return -((free >= 0 ? free : s) + 1)
      if (h === TOMBSTONE) {
        if (free < 0) free = s
      } else if (h === hash && this.keyEquals(a[s * SLOT_WORDS + Slot.KEY]!, key, len)) {
        return s
      }
    }
    return free >= 0 ? -(free + 1) : -(this.slots + 1)
  }

  /** Any thread. Whether slot `s` is EMPTY (so inserting there consumes a fresh slot). */
  isEmpty(s: number): boolean {
    return Atomics.load(this.i32, s * SLOT_WORDS) === EMPTY
  }

  /** Lock holder. Starts changing slot `s`: readers of it retry until the commit finishes. */
  touch(s: number): void {
    this.journal.beginSeq(this.region, s * SLOT_WORDS + Slot.SEQ)
  }

  /** Lock holder, after {@link touch}. Writes one word of slot `s`. */
  set(s: number, word: number, value: number): void {
    this.journal.set(this.region, s * SLOT_WORDS + word, value)
  }

  /** Lock holder. Word `word` of slot `s`. */
  get(s: number, word: number): number {
    return this.i32[s * SLOT_WORDS + word]!
  }

  /**
   * Lock holder, after touching `s` and `head`. Makes a fresh slot `s` the first member of `head`'s group.
   *
   * The neighbour's list words change without touching its seq: a slot's seq is also the version of its
   * value (what `synchronized` compares), and a neighbour's value does not change here. Group walks are
   * guarded by the head's seq, which every membership change moves.
   */
  link(head: number, s: number): void {
    const first = this.get(head, Slot.NEXT)
    this.set(s, Slot.NEXT, first)
    this.set(s, Slot.PREV, head + 1)
    if (first !== 0) this.set(first - 1, Slot.PREV, s + 1)
    this.set(head, Slot.NEXT, s + 1)
  }

  /** Lock holder, after touching `s` and its group's head. Takes `s` out of its group list (see {@link link}). */
  unlink(s: number): void {
    const next = this.get(s, Slot.NEXT)
    const prev = this.get(s, Slot.PREV)
    this.set(prev - 1, Slot.NEXT, next)
    if (next !== 0) this.set(next - 1, Slot.PREV, prev)
  }

  /**
   * Lock holder, after touching `s`. Marks `s` deleted, then turns a trailing run of tombstones back to
   * EMPTY. Returns how many slots became EMPTY (fresh again).
   */
  remove(s: number): number {
    this.set(s, Slot.HASH, TOMBSTONE)
    this.set(s, Slot.KEY, 0)
    this.set(s, Slot.TAG, ValueTag.NONE)
    this.set(s, Slot.NEXT, 0)
    this.set(s, Slot.PREV, 0)
    if (this.get((s + 1) & this.mask, Slot.HASH) !== EMPTY) return 0
    let freed = 0
    for (let t = s; freed < this.slots && this.get(t, Slot.HASH) === TOMBSTONE; t = (t - 1) & this.mask) {
      this.touch(t)
      this.set(t, Slot.HASH, EMPTY)
      freed++
    }
    return freed
  }
}

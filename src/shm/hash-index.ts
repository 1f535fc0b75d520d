/**
 * An open-addressing (linear probing) hash index from a byte key to a slot, with a sequence lock per
 * slot so that readers never take a lock and never wait on another key, and an intrusive doubly linked
 * list per key group (the keys sharing a prefix, e.g. one scope of one stream) for enumeration and bulk
 * deletion.
 *
 * A key is `group ‖ name`. Each group present has one head slot, keyed `group ‖ 0xFF` (0xFF never occurs
 * in UTF-8, so no member name collides with it); the head's sequence word moves on every change to the
 * group's membership (and on the value changes the general commit path makes; the inline-number fast path
 * moves only the member's). A whole-group read that finds the head's seq and every member's seq unchanged
 * after its walk saw one snapshot.
 *
 * Slot layout (16 Int32 words = one 64-byte cache line per slot; slot `s` starts at word `16s`):
 *
 * | word  | name   | meaning                                                                              |
 * |-------|--------|--------------------------------------------------------------------------------------|
 * | 0     | hash   | 0 = EMPTY (ends a probe), 1 = TOMBSTONE (deleted, probes continue), else the key hash |
 * | 1     | seq    | sequence lock: odd while a commit changes this slot; +2 per change, never reset        |
 * | 2     | key    | > 0: data-region block holding the key bytes; < 0: minus the length of an inline key   |
 * | 3     | tag    | {@link ValueTag} of the value                                                         |
 * | 4     | v0     | INT: the value; F64: low word; BYTES: the value's block; HEAD: member count            |
 * | 5     | v1     | F64: high word                                                                        |
 * | 6     | next   | group list: next slot + 1 (0 = end); on a head, the first member                     |
 * | 7     | prev   | group list: previous slot + 1 (the head for the first member)                         |
 * | 8..15 | inline | the key bytes, when the key is at most {@link INLINE_KEY_BYTES} long                  |
 *
 * A key short enough lives in its slot, so a lookup costs one cache miss (the slot), not two (slot, then
 * key block): with a million keys the index is far bigger than the caches, and that second miss was
 * most of a lookup. Inline key bytes are written only into a fresh slot, before its hash publishes it.
 *
 * Deletion leaves a tombstone; a tombstone followed by an EMPTY slot is turned back to EMPTY (with the
 * tombstones before it), which no probe can notice. Inserts reuse the first tombstone on their probe.
 *
 * Thread contract: `find`, `keyAt`, `keyBytes`, `keyEquals` — any thread, lock-free, never block (they
 * return `RETRY` rather than wait). Every method that changes a slot — only the commit lock holder,
 * through the journal; never blocks.
 *
 * @module
 */
import type { BlockAllocator } from './allocator.js'
import type { UndoJournal } from './journal.js'

/** Int32 words per slot. */
export const SLOT_WORDS = 16
/** Bytes per slot (one cache line; the index region is page-aligned). */
export const SLOT_BYTES = SLOT_WORDS * 4

export const Slot = { HASH: 0, SEQ: 1, KEY: 2, TAG: 3, V0: 4, V1: 5, NEXT: 6, PREV: 7, INLINE: 8 } as const

/** Longest key kept inline in its slot (words 8..15). */
export const INLINE_KEY_BYTES = (SLOT_WORDS - Slot.INLINE) * 4

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

/** Slots for a table that holds `keys` live keys (and their group heads) at a load factor ≤ 0.67. */
export function indexSlotsFor(keys: number): number {
  let n = 64
  while (n < keys * 1.5) n *= 2
  return n
}

export class HashIndex {
  readonly slots: number
  private readonly mask: number
  /** Byte view of the index region (inline keys). */
  readonly u8: Uint8Array

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
    this.u8 = new Uint8Array(i32.buffer, i32.byteOffset, i32.byteLength)
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
      const same = this.keyAt(at, key, len)
      if (Atomics.load(a, at + Slot.SEQ) !== seq) return -2
      if (same && a[at] === hash) {
        this.lastSeq = seq
        return s
      }
    }
    return -1
  }

  /**
   * Any thread. Whether the slot at word `at` holds `key[0, len)` (inline or in its block); false for a
   * torn key word. Lock-free callers validate the answer with the slot's seq.
   */
  keyAt(at: number, key: Uint8Array, len: number): boolean {
    const k = this.i32[at + Slot.KEY]!
    if (k >= 0) return this.keyEquals(k, key, len)
    if (-k !== len) return false
    const u8 = this.u8
    const off = (at + Slot.INLINE) * 4
    for (let i = 0; i < len; i++) if (u8[off + i] !== key[i]) return false
    return true
  }

  /** Any thread. The key bytes of the slot at word `at` (a copy), or undefined for a torn key word. */
  keyBytes(at: number): Uint8Array | undefined {
    const k = this.i32[at + Slot.KEY]!
    if (k < 0) {
      if (-k > INLINE_KEY_BYTES) return undefined
      const off = (at + Slot.INLINE) * 4
      return this.u8.slice(off, off - k)
    }
    const len = this.heap.blockLength(k)
    if (len < 0) return undefined
    const off = this.heap.payloadOffset(k)
    return this.heap.u8.slice(off, off + len)
  }

  /**
   * Lock holder, after touching the fresh slot `s` (just claimed, not yet published by its hash): stores
   * `key[0, len)` inline or, when longer than {@link INLINE_KEY_BYTES}, in a fresh block. Neither the
   * inline bytes nor a fresh block's bytes are journaled: a rollback un-publishes the slot (and frees the
   * block), and nobody reads a dead slot's key.
   */
  storeKey(s: number, key: Uint8Array, len: number): void {
    let u8 = this.u8
    let off = (s * SLOT_WORDS + Slot.INLINE) * 4
    let word = -len
    if (len > INLINE_KEY_BYTES) {
      word = this.heap.alloc(len)
      u8 = this.heap.u8
      off = this.heap.payloadOffset(word)
    }
    for (let i = 0; i < len; i++) u8[off + i] = key[i]!
    this.set(s, Slot.KEY, word)
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
      } else if (h === hash && this.keyAt(s * SLOT_WORDS, key, len)) {
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

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
 * Region layout: `slots` slots of 16 Int32 words (one 64-byte cache line each; slot `s` starts at word
 * `16s`), then one more cache line whose first word is the move counter (even when no move is in flight).
 *
 * Slot layout:
 *
 * | word  | name   | meaning                                                                              |
 * |-------|--------|--------------------------------------------------------------------------------------|
 * | 0     | hash   | 0 = EMPTY (ends a probe), 1 = TOMBSTONE (deleted in this commit), else the key hash   |
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
 * Deletion never leaves anything behind (backward-shift deletion). Inside a commit a deleted slot is a
 * tombstone (probes continue past it, inserts of the same commit may reuse it); before the commit point
 * {@link HashIndex.compact} closes every hole: the live keys after it in its probe run that may legally
 * sit in the hole move back into it, one at a time, until the hole reaches a slot nothing needs, which
 * becomes EMPTY. After every commit the index holds exactly the live keys and the group heads — no
 * tombstones — so unique-key churn runs at a steady speed for ever, whatever the live-key count.
 *
 * Why moving live keys is safe for lock-free readers (and why not a rehash): a move touches both slots'
 * seq words (odd for the whole commit, then +2), so a reader that copies either slot retries, and a
 * version (slot, seq) a transaction holds for a moved key no longer validates (a conflict, retried like
 * any other; never a wrong value). The one thing a seqlock per slot cannot show is a key missed because
 * it moved from ahead of a probe to behind it; the index's move counter covers that: a commit that moves
 * a key makes the counter odd before its first move and even after the commit point, and a reader that
 * concludes "absent" (or walks a group list) accepts that only if the counter was even and unchanged
 * around its probe. A present key found is proven by its slot's seq alone, so reads of present keys never
 * look at the counter twice. A rehash into a fresh table would need a second index region (the index is
 * the store's biggest region) and a pause proportional to the table under the lock; moving only the keys a
 * delete displaces costs O(run length) per delete.
 *
 * Sizing: a group head exists only while its group has a member, so heads never outnumber live keys; the
 * table has room for `maxKeys` keys plus as many heads at a fill of at most {@link MAX_LOAD}, and the slot
 * count need not be a power of two (the home slot is `hash × slots / 2³²`). `maxKeys` therefore bounds
 * only the keys a user stores, and the index cannot fill before it.
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

/** Fill the index is sized for: `maxKeys` keys plus as many group heads use at most this share of the slots. */
export const MAX_LOAD = 0.9

/** Slots for a table that holds `keys` live keys and up to as many group heads at a fill ≤ {@link MAX_LOAD}. */
export function indexSlotsFor(keys: number): number {
  return Math.max(64, Math.ceil((2 * keys) / MAX_LOAD))
}

/** Bytes of an index region of `slots` slots (the slots, then the move counter's cache line). */
export function indexBytes(slots: number): number {
  return (slots + 1) * SLOT_BYTES
}

export class HashIndex {
  readonly slots: number
  /** Word of the move counter (after the last slot). */
  private readonly movesAt: number
  /** Byte view of the index region (inline keys). */
  readonly u8: Uint8Array
  /** Lock holder: slots deleted in the commit in progress, closed by {@link compact}. */
  private holes: number[] = []
  /** Lock holder: keys moved by the last {@link compact}. */
  moved = 0

  constructor(
    /** Int32 view of the index region. */
    readonly i32: Int32Array,
    private readonly region: number,
    private readonly heap: BlockAllocator,
    private readonly journal: UndoJournal,
  ) {
    this.slots = i32.length / SLOT_WORDS - 1
    if (!Number.isInteger(this.slots) || this.slots < 2) {
      throw new RangeError(`index region of ${i32.byteLength} bytes is not a whole number of slots`)
    }
    this.movesAt = this.slots * SLOT_WORDS
    this.u8 = new Uint8Array(i32.buffer, i32.byteOffset, i32.byteLength)
  }

  /** The (even) sequence number at which the last successful {@link find} on this thread validated its slot. */
  lastSeq = 0

  /** The home slot of `hash` (the high bits of hash × slots, so any slot count works). */
  home(hash: number): number {
    return Math.floor(((hash >>> 0) * this.slots) / 4294967296)
  }

  /** Any thread. The move counter; odd while a commit moves keys. Sample before a probe or walk. */
  moves(): number {
    return Atomics.load(this.i32, this.movesAt)
  }

  /**
   * Any thread. Whether an "absent" answer (or a group walk) that began when the counter read `m` still
   * stands: no move was in flight then and none happened since.
   */
  unmoved(m: number): boolean {
    return (m & 1) === 0 && Atomics.load(this.i32, this.movesAt) === m
  }

  /**
   * Any thread, lock-free. The slot holding `key`, `-1` if absent, or `-2` (retry) when a commit touched
   * a slot on the way. Validates each candidate with its sequence word, and an absent answer with the
   * move counter.
   */
  find(key: Uint8Array, len: number, hash: number): number {
    const a = this.i32
    const n = this.slots
    const m = this.moves()
    for (let i = 0, s = this.home(hash); i < n; i++, s = s + 1 === n ? 0 : s + 1) {
      const at = s * SLOT_WORDS
      const h = Atomics.load(a, at)
      if (h === EMPTY) return this.unmoved(m) ? -1 : -2
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
    return this.unmoved(m) ? -1 : -2
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
    const n = this.slots
    let free = -1
    for (let i = 0, s = this.home(hash); i < n; i++, s = s + 1 === n ? 0 : s + 1) {
      const h = a[s * SLOT_WORDS]!
      if (h === EMPTY) return -((free >= 0 ? free : s) + 1)
      if (h === TOMBSTONE) {
        if (free < 0) free = s
      } else if (h === hash && this.keyAt(s * SLOT_WORDS, key, len)) {
        return s
      }
    }
    return free >= 0 ? -(free + 1) : -(n + 1)
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
   * Lock holder, after touching `s`. Marks `s` deleted (a tombstone until {@link compact} closes it, before
   * this commit's commit point).
   */
  remove(s: number): void {
    this.set(s, Slot.HASH, TOMBSTONE)
    this.set(s, Slot.KEY, 0)
    this.set(s, Slot.TAG, ValueTag.NONE)
    this.set(s, Slot.NEXT, 0)
    this.set(s, Slot.PREV, 0)
    this.holes.push(s)
  }

  /** Lock holder: forgets the holes of a commit that is being rolled back. */
  discardHoles(): void {
    this.holes.length = 0
  }

  /**
   * Lock holder, before the commit point: closes every hole this commit's deletes left (backward-shift
   * deletion; see the module doc). Returns how many slots became EMPTY; {@link moved} says how many keys
   * moved (their slots changed: callers that noted a slot for a key in this commit look it up again).
   */
  compact(): number {
    this.moved = 0
    let emptied = 0
    const holes = this.holes
    for (let i = 0; i < holes.length; i++) {
      const s = holes[i]!
      // A later insert of the same commit may have reused the tombstone.
      if (this.get(s, Slot.HASH) === TOMBSTONE) {
        this.close(s)
        emptied++
      }
    }
    holes.length = 0
    return emptied
  }

  /** Closes the hole (a tombstone) at `hole`: moves back each later key of its run that may sit there. */
  private close(hole: number): void {
    const n = this.slots
    for (let j = hole + 1 === n ? 0 : hole + 1; ; j = j + 1 === n ? 0 : j + 1) {
      const h = this.get(j, Slot.HASH)
      if (h === EMPTY) break
      // Another tombstone of this commit stays where it is (it is closed in its own turn).
      if (h === TOMBSTONE) continue
      const home = this.home(h)
      // The key at j may move to `hole` unless its home lies cyclically in (hole, j].
      const stays = hole <= j ? hole < home && home <= j : hole < home || home <= j
      if (stays) continue
      this.move(j, hole)
      hole = j
    }
    this.touch(hole)
    this.set(hole, Slot.HASH, EMPTY)
    this.set(hole, Slot.KEY, 0)
    this.set(hole, Slot.TAG, ValueTag.NONE)
    this.set(hole, Slot.NEXT, 0)
    this.set(hole, Slot.PREV, 0)
  }

  /** Moves the entry of slot `from` into the hole `to`, keeping its group list linked. */
  private move(from: number, to: number): void {
    if (this.moved++ === 0) this.journal.beginSeq(this.region, this.movesAt)
    this.touch(from)
    this.touch(to)
    const a = this.i32
    const f = from * SLOT_WORDS
    for (let w = Slot.KEY; w < SLOT_WORDS; w++) this.set(to, w, a[f + w]!)
    this.set(to, Slot.HASH, a[f]!)
    const next = a[f + Slot.NEXT]!
    const prev = a[f + Slot.PREV]!
    if (prev !== 0) this.set(prev - 1, Slot.NEXT, to + 1)
    if (next !== 0) this.set(next - 1, Slot.PREV, to + 1)
    this.set(from, Slot.HASH, TOMBSTONE)
  }
}

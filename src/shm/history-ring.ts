/**
 * A bounded log of recent commits in shared memory: fixed-size entries in a ring, written by the commit
 * lock holder inside its commit (so a rolled-back commit leaves no entry), read lock-free by any thread —
 * in particular the main thread, although every write happens on workers.
 *
 * Region layout (bytes):
 *
 * | offset | size | meaning                                                   |
 * |--------|------|-----------------------------------------------------------|
 * | 0      | 4    | head: entries ever appended (entry `k` lives at `k % cap`) |
 * | 4      | 4    | cap: entries in the ring                                   |
 * | 8      | 4    | entry size in bytes                                        |
 * | 64     | …    | entries                                                    |
 *
 * Entry layout (bytes from the entry start):
 *
 * | offset | size | meaning                                                                   |
 * |--------|------|---------------------------------------------------------------------------|
 * | 0      | 4    | seq: odd while being written (sequence lock for readers)                   |
 * | 4      | 4    | k: the entry's absolute number (a reader expecting another `k` skips it)   |
 * | 8      | 8    | timestamp (ms since epoch, f64, native byte order)                         |
 * | 16     | 8    | commit version (f64)                                                       |
 * | 24     | 4×8  | key length, group length, meta length, old tag, old length, new tag, new length, flags |
 * | 56     | 8    | old number (f64; INT and F64 tags)                                         |
 * | 64     | 8    | new number                                                                 |
 * | 72     | …    | key bytes, meta bytes (from the next 4-byte boundary), old value bytes, new value bytes |
 *
 * Values that do not fit the entry are dropped from it and flagged `truncated`; key and meta always fit
 * (the store sizes entries for its key and meta limits).
 *
 * Thread contract: `append`, `stageAppend`, `openStaged`, `appendStaged`, `finishStaged` — commit lock holder only, never blocks. `read` — any thread, lock-free,
 * never blocks.
 *
 * @module
 */
import type { UndoJournal } from './journal.js'

const HEAD = 0
const CAP = 1
const ENTRY = 2
const HEADER_BYTES = 64
const FIXED_BYTES = 72
const FLAG_TRUNCATED = 1

/** Bytes of a ring of `entries` entries of `entryBytes` each. */
export function historyBytes(entries: number, entryBytes: number): number {
  return HEADER_BYTES + Math.max(1, entries) * entryBytes
}

/** Smallest entry that holds a key of `keyBytes` and meta of `metaBytes` plus small values. */
export function historyEntryBytes(keyBytes: number, metaBytes: number): number {
  return (FIXED_BYTES + keyBytes + metaBytes + 256 + 7) & ~7
}

/** One side of a change: a slot value as the store keeps it. */
export interface RawValue {
  tag: number
  num: number
  bytes: Uint8Array | undefined
}

/** One entry as read back. */
export interface HistoryEntry {
  timestamp: number
  version: number
  key: Uint8Array
  groupLen: number
  meta: Uint8Array
  old: RawValue
  new: RawValue
  truncated: boolean
}

/** `n` rounded up to a multiple of 4. */
function align4(n: number): number {
  return (n + 3) & ~3
}

/** Copies `src[0, len)` to `dst` at `at`; short runs by hand (cheaper than `set`'s fixed cost). */
function copyBytes(dst: Uint8Array, at: number, src: Uint8Array, len: number): void {
  if (len > 64) dst.set(len === src.length ? src : src.subarray(0, len), at)
  else for (let i = 0; i < len; i++) dst[at + i] = src[i]!
}

export class HistoryRing {
  private readonly i32: Int32Array
  private readonly u8: Uint8Array
  /** Float fields sit at 8-byte aligned offsets (entries are multiples of 8 bytes, from byte 64). */
  private readonly f64: Float64Array
  private readonly cap: number
  private readonly entryBytes: number

  constructor(
    sab: SharedArrayBuffer,
    private readonly region: number,
    private readonly journal: UndoJournal,
  ) {
    this.i32 = new Int32Array(sab)
    this.u8 = new Uint8Array(sab)
    this.f64 = new Float64Array(sab, 0, sab.byteLength >> 3)
    this.cap = Atomics.load(this.i32, CAP)
    this.entryBytes = Atomics.load(this.i32, ENTRY)
  }

  /** Main thread, before sharing. `entries` may be 0 (history off). */
  static initialize(sab: SharedArrayBuffer, entries: number, entryBytes: number): void {
    const i32 = new Int32Array(sab)
    Atomics.store(i32, HEAD, 0)
    Atomics.store(i32, CAP, entries)
    Atomics.store(i32, ENTRY, entryBytes)
  }

  /** The Int32 view, for the journal's region table. */
  words(): Int32Array {
    return this.i32
  }

  /** Lock holder, inside a commit: appends an entry, journaling its seq and the head as it goes. */
  append(
    timestamp: number,
    version: number,
    key: Uint8Array,
    keyLen: number,
    keyWords: Int32Array | undefined,
    groupLen: number,
    meta: Uint8Array,
    old: RawValue,
    now: RawValue,
  ): void {
    if (this.cap === 0) return
    const k = this.i32[HEAD]!
    const at = this.entryAt(k)
    this.journal.beginSeq(this.region, at >> 2)
    this.writeEntry(at, k, timestamp, version, key, keyLen, keyWords, groupLen, meta, old, now)
    this.journal.set(this.region, HEAD, k + 1)
  }

  /** Byte offset of the entry the batch append in progress writes (set by {@link stageAppend}). */
  private stagedAt = 0

  /**
   * Lock holder, batch commit (see `UndoJournal.stage`): stages the words the next append changes — the
   * entry's seq and the head. False when history is off (nothing to append).
   */
  stageAppend(): boolean {
    if (this.cap === 0) return false
    const at = this.entryAt(this.i32[HEAD]!)
    this.stagedAt = at
    this.journal.stageSeq(this.region, at >> 2)
    this.journal.stage(this.region, HEAD)
    return true
  }

  /**
   * Lock holder, batch commit, right after `publish` and before the commit's first Atomics store (the key's
   * sequence word made odd): makes the staged entry's seq odd, so readers skip the entry until
   * {@link finishStaged}. A plain store: the Atomics store that follows orders it before every byte of the
   * entry {@link appendStaged} writes, as it orders the key's value words.
   */
  openStaged(): void {
    const w = this.stagedAt >> 2
    this.i32[w] = this.i32[w]! + 1
  }

  /** Lock holder, batch commit, after {@link openStaged}: the append {@link stageAppend} staged. */
  appendStaged(
    timestamp: number,
    version: number,
    key: Uint8Array,
    keyLen: number,
    keyWords: Int32Array | undefined,
    groupLen: number,
    meta: Uint8Array,
    old: RawValue,
    now: RawValue,
  ): void {
    const k = this.i32[HEAD]!
    this.writeEntry(this.stagedAt, k, timestamp, version, key, keyLen, keyWords, groupLen, meta, old, now)
    this.i32[HEAD] = k + 1
  }

  /** Lock holder, batch commit, after its commit point: makes the entry {@link appendStaged} wrote readable. */
  finishStaged(): void {
    const w = this.stagedAt >> 2
    // Even again: publishes the entry's bytes to lock-free readers.
    Atomics.store(this.i32, w, this.i32[w]! + 1)
  }

  /** The meta last seen, and a word view of it when its buffer allows one. */
  private metaSrc: Uint8Array | undefined
  private metaWords: Int32Array | undefined

  /**
   * A word view of `meta` (cached for the last meta: a thread's commits mostly carry the same one), or
   * undefined when its bytes do not start on a 4-byte boundary with whole words behind them.
   */
  private wordsOf(meta: Uint8Array): Int32Array | undefined {
    if (meta !== this.metaSrc) {
      this.metaSrc = meta
      const aligned =
        meta.byteOffset % 4 === 0 && meta.byteOffset + align4(meta.length) <= meta.buffer.byteLength
      this.metaWords = aligned
        ? new Int32Array(meta.buffer, meta.byteOffset, align4(meta.length) >> 2)
        : undefined
    }
    return this.metaWords
  }

  /**
   * Copies the first `len` bytes `words` holds to byte `at` (4-aligned), a word at a time: the bytes of
   * the last word past `len` land in the entry's slack (padding, or the start of what is written next).
   */
  private copyWords(at: number, words: Int32Array, len: number): void {
    const w = at >> 2
    for (let i = 0, n = align4(len) >> 2; i < n; i++) this.i32[w + i] = words[i]!
  }

  /** Writes entry number `k` at byte `at`; its seq is odd. */
  private writeEntry(
    at: number,
    k: number,
    timestamp: number,
    version: number,
    key: Uint8Array,
    keyLen: number,
    keyWords: Int32Array | undefined,
    groupLen: number,
    meta: Uint8Array,
    old: RawValue,
    now: RawValue,
  ): void {
    const w = at >> 2
    // Not journaled: after a rollback the entry claims number k, which readers then expect in the next
    // lap only, so its half-written bytes are never taken for the entry it replaced.
    this.i32[w + 1] = k
    const f = this.f64
    const d = at >> 3
    f[d + 1] = timestamp
    f[d + 2] = version
    const oldLen = old.bytes?.length ?? 0
    const newLen = now.bytes?.length ?? 0
    const metaAt = align4(keyLen)
    const room = this.entryBytes - FIXED_BYTES - metaAt - meta.length
    const fits = oldLen + newLen <= room
    this.i32[w + 6] = keyLen
    this.i32[w + 7] = groupLen
    this.i32[w + 8] = meta.length
    this.i32[w + 9] = old.tag
    this.i32[w + 10] = fits ? oldLen : 0
    this.i32[w + 11] = now.tag
    this.i32[w + 12] = fits ? newLen : 0
    this.i32[w + 13] = fits ? 0 : FLAG_TRUNCATED
    f[d + 7] = old.num
    f[d + 8] = now.num
    let p = at + FIXED_BYTES
    if (keyWords !== undefined) this.copyWords(p, keyWords, keyLen)
    else copyBytes(this.u8, p, key, keyLen)
    p += metaAt
    const metaWords = this.wordsOf(meta)
    if (metaWords !== undefined) this.copyWords(p, metaWords, meta.length)
    else copyBytes(this.u8, p, meta, meta.length)
    p += meta.length
    if (fits) {
      if (old.bytes) copyBytes(this.u8, p, old.bytes, oldLen)
      if (now.bytes) copyBytes(this.u8, p + oldLen, now.bytes, newLen)
    }
  }

  /** Any thread. Up to `limit` most recent entries, newest first; entries being overwritten are skipped. */
  read(limit: number): HistoryEntry[] {
    const out: HistoryEntry[] = []
    if (this.cap === 0) return out
    const head = Atomics.load(this.i32, HEAD)
    const stop = Math.max(0, head - Math.min(limit, this.cap))
    for (let k = head - 1; k >= stop; k--) {
      const e = this.readEntry(k)
      if (e) out.push(e)
    }
    return out
  }

  /** Byte offset of entry number `k` (its seq word first). */
  private entryAt(k: number): number {
    return HEADER_BYTES + (k % this.cap) * this.entryBytes
  }

  private readEntry(k: number): HistoryEntry | undefined {
    const at = this.entryAt(k)
    const w = at >> 2
    for (let attempt = 0; attempt < 64; attempt++) {
      const seq = Atomics.load(this.i32, w)
      if (seq & 1) continue
      if (this.i32[w + 1] !== k) return undefined
      const e = this.copyEntry(at, w)
      // Same even seq after the copy: nothing was written into the entry meanwhile.
      if (Atomics.load(this.i32, w) === seq && e) return e
    }
    return undefined
  }

  private copyEntry(at: number, w: number): HistoryEntry | undefined {
    const keyLen = this.i32[w + 6]!
    const metaLen = this.i32[w + 8]!
    const oldLen = this.i32[w + 10]!
    const newLen = this.i32[w + 12]!
    if (keyLen < 0 || metaLen < 0 || oldLen < 0 || newLen < 0) return undefined
    const p = at + FIXED_BYTES
    const m = p + align4(keyLen)
    const o = m + metaLen
    const end = o + oldLen + newLen
    if (end > at + this.entryBytes) return undefined
    const f = this.f64
    const d = at >> 3
    return {
      timestamp: f[d + 1]!,
      version: f[d + 2]!,
      key: this.u8.slice(p, p + keyLen),
      groupLen: this.i32[w + 7]!,
      meta: this.u8.slice(m, m + metaLen),
      old: {
        tag: this.i32[w + 9]!,
        num: f[d + 7]!,
        bytes: oldLen ? this.u8.slice(o, o + oldLen) : undefined,
      },
      new: {
        tag: this.i32[w + 11]!,
        num: f[d + 8]!,
        bytes: newLen ? this.u8.slice(o + oldLen, end) : undefined,
      },
      truncated: (this.i32[w + 13]! & FLAG_TRUNCATED) !== 0,
    }
  }
}

/**
 * A segregated-fit block allocator over one growable SharedArrayBuffer (the data region). Blocks are
 * powers of two from 16 bytes; a free list per size class; an empty class is served by splitting a larger
 * free block, then by bumping `top`, growing the buffer (doubling, capped at its `maxByteLength`) as
 * needed. Freed blocks go back to their class's list, so churn of same-sized values stays flat.
 *
 * Addresses are in 8-byte units (0 = null); block `b` starts at byte `8b`.
 *
 * Block layout (Int32 words from byte `8b`):
 *
 * | word | allocated                     | free                                  |
 * |------|-------------------------------|---------------------------------------|
 * | 0    | size class `c` (16 << c bytes)| size class                            |
 * | 1    | payload length in bytes       | next free block of the class (0 = end) |
 * | 2..  | payload                       | unused                                |
 *
 * Allocator words (Int32, in the control region from `base`):
 *
 * | word        | name  | meaning                                           |
 * |-------------|-------|---------------------------------------------------|
 * | 0           | top   | first never-allocated unit                        |
 * | 1           | used  | units in allocated blocks (headers included)      |
 * | 2 .. 2+32   | heads | first free block of each size class (0 = none)     |
 *
 * Every change to these words and to block headers goes through the {@link UndoJournal}, so a commit
 * that dies mid-allocation is rolled back exactly. Payload bytes of a fresh block are not journaled.
 *
 * Thread contract: `alloc`/`free` only by the holder of the commit lock, never blocking (growing the
 * buffer is a synchronous `grow`). `blockLength`/`payloadOffset` by any thread (lock-free readers validate
 * what they read with the sequence word that guards the pointer).
 *
 * @module
 */
import type { UndoJournal } from './journal.js'

/** Size classes: 16 B … 16 GiB. */
export const SIZE_CLASSES = 31
/** Int32 words of allocator state in the control region. */
export const ALLOCATOR_WORDS = 2 + SIZE_CLASSES + 1
/** Bytes of a block header. */
export const BLOCK_HEADER_BYTES = 8
/** First allocatable unit (unit 0 and 1 stay unused so that 0 means null). */
const FIRST_UNIT = 2

const TOP = 0
const USED = 1
const HEADS = 2

/** Outcome of {@link BlockAllocator.alloc} when it cannot serve the request. */
export class AllocatorFullError extends Error {}

/** The size class whose blocks hold `bytes` (header included). */
export function sizeClassFor(bytes: number): number {
  return bytes <= 16 ? 0 : 32 - Math.clz32(bytes - 1) - 4
}

export class BlockAllocator {
  /**
   * Views over the data region as long as it was when last looked at (fixed-length views are faster than
   * length-tracking ones); {@link ensure} renews them when another thread grew the region.
   */
  u8: Uint8Array
  i32: Int32Array

  constructor(
    readonly data: SharedArrayBuffer,
    private readonly ctrl: Int32Array,
    private readonly base: number,
    private readonly ctrlRegion: number,
    private readonly dataRegion: number,
    private readonly journal: UndoJournal,
  ) {
    this.u8 = new Uint8Array(data, 0, data.byteLength)
    this.i32 = new Int32Array(data, 0, data.byteLength >> 2)
  }

  /** Any thread. Makes the views cover `[0, byteEnd)` if the region is that long; false if it is not. */
  ensure(byteEnd: number): boolean {
    if (byteEnd <= this.u8.length) return true
    const len = this.data.byteLength
    if (byteEnd > len) return false
    this.u8 = new Uint8Array(this.data, 0, len)
    this.i32 = new Int32Array(this.data, 0, len >> 2)
    return true
  }

  /** Main thread, before sharing. */
  static initialize(ctrl: Int32Array, base: number): void {
    Atomics.store(ctrl, base + TOP, FIRST_UNIT)
    Atomics.store(ctrl, base + USED, 0)
    for (let c = 0; c < SIZE_CLASSES; c++) Atomics.store(ctrl, base + HEADS + c, 0)
  }

  /** Bytes in allocated blocks. Any thread, a racy snapshot. */
  usedBytes(): number {
    return Atomics.load(this.ctrl, this.base + USED) * 8
  }

  /** Bytes ever carved from the region (the high-water mark). Any thread, a racy snapshot. */
  topBytes(): number {
    return Atomics.load(this.ctrl, this.base + TOP) * 8
  }

  /** Lock holder. A block whose payload holds `bytes`; throws {@link AllocatorFullError} past the cap. */
  alloc(bytes: number): number {
    const c = sizeClassFor(bytes + BLOCK_HEADER_BYTES)
    if (c >= SIZE_CLASSES)
      throw new AllocatorFullError(`block of ${bytes} bytes is larger than any size class`)
    const b = this.pop(c) || this.split(c) || this.bump(c)
    this.ensure(8 * b + (16 << c))
    const j = this.journal
    j.set(this.dataRegion, 2 * b, c)
    j.set(this.dataRegion, 2 * b + 1, bytes)
    j.set(this.ctrlRegion, this.base + USED, this.ctrl[this.base + USED]! + (2 << c))
    return b
  }

  /** Lock holder. Returns `b` to its class's free list. */
  free(b: number): void {
    this.ensure(8 * b + 8)
    const c = this.i32[2 * b]!
    const head = this.base + HEADS + c
    const j = this.journal
    j.set(this.dataRegion, 2 * b + 1, this.ctrl[head]!)
    j.set(this.ctrlRegion, head, b)
    j.set(this.ctrlRegion, this.base + USED, this.ctrl[this.base + USED]! - (2 << c))
  }

  /** Byte offset of block `b`'s payload. */
  payloadOffset(b: number): number {
    return 8 * b + BLOCK_HEADER_BYTES
  }

  /** Payload length of allocated block `b`, or -1 if `b` is out of bounds (a torn pointer). Any thread. */
  blockLength(b: number): number {
    if (
      b < FIRST_UNIT ||
      (8 * b + BLOCK_HEADER_BYTES > this.u8.length && !this.ensure(8 * b + BLOCK_HEADER_BYTES))
    )
      return -1
    const c = this.i32[2 * b]!
    const len = this.i32[2 * b + 1]!
    if (c < 0 || c >= SIZE_CLASSES || len < 0 || len + BLOCK_HEADER_BYTES > 16 << c) return -1
    if (8 * b + BLOCK_HEADER_BYTES + len > this.u8.length && !this.ensure(8 * b + BLOCK_HEADER_BYTES + len))
      return -1
    return len
  }

  /**
   * Consistency audit (tests, tools): the free lists, `top` and `used` against the allocated blocks the
   * caller found reachable (`[block, class]`). Returns the problems found, none when consistent. Lock
   * holder, or a quiet store.
   */
  audit(allocated: readonly [number, number][]): string[] {
    const problems: string[] = []
    const top = this.ctrl[this.base + TOP]!
    this.ensure(top * 8)
    const owner = new Map<number, string>()
    const claim = (b: number, c: number, what: string) => {
      const end = b + (2 << c)
      if (b < FIRST_UNIT || end > top)
        problems.push(`${what} block ${b} (class ${c}) lies outside [${FIRST_UNIT}, ${top})`)
      for (let u = b; u < end; u += 2) {
        const prev = owner.get(u)
        if (prev !== undefined) {
          problems.push(`${what} block ${b} overlaps ${prev}`)
          return
        }
        owner.set(u, `${what} block ${b}`)
      }
    }
    let usedUnits = 0
    for (const [b, c] of allocated) {
      if (this.i32[2 * b] !== c)
        problems.push(`allocated block ${b} has class ${this.i32[2 * b]}, expected ${c}`)
      claim(b, c, 'allocated')
      usedUnits += 2 << c
    }
    for (let c = 0; c < SIZE_CLASSES; c++) {
      let steps = 0
      for (let b = this.ctrl[this.base + HEADS + c]!; b !== 0; b = this.i32[2 * b + 1]!) {
        if (++steps > top) {
          problems.push(`free list ${c} has a cycle`)
          break
        }
        if (this.i32[2 * b] !== c) problems.push(`free block ${b} on list ${c} has class ${this.i32[2 * b]}`)
        claim(b, c, 'free')
      }
    }
    if (usedUnits !== this.ctrl[this.base + USED]) {
      problems.push(`used is ${this.ctrl[this.base + USED]} units but allocated blocks hold ${usedUnits}`)
    }
    return problems
  }

  private pop(c: number): number {
    const head = this.base + HEADS + c
    const b = this.ctrl[head]!
    if (b !== 0) {
      this.ensure(8 * b + (16 << c))
      this.journal.set(this.ctrlRegion, head, this.i32[2 * b + 1]!)
    }
    return b
  }

  /** Takes the smallest larger free block and splits it down to class `c`, freeing the upper halves. */
  private split(c: number): number {
    let k = c + 1
    while (k < SIZE_CLASSES && this.ctrl[this.base + HEADS + k] === 0) k++
    if (k >= SIZE_CLASSES) return 0
    const b = this.pop(k)
    for (let s = k - 1; s >= c; s--) {
      const buddy = b + (2 << s)
      const head = this.base + HEADS + s
      // The buddy lies inside `b`, which a rollback returns whole to class k: its header needs no log.
      this.i32[2 * buddy] = s
      this.i32[2 * buddy + 1] = this.ctrl[head]!
      this.journal.set(this.ctrlRegion, head, buddy)
    }
    return b
  }

  private bump(c: number): number {
    const top = this.ctrl[this.base + TOP]!
    const end = top + (2 << c)
    if (end * 8 > this.data.byteLength) this.grow(end * 8)
    this.journal.set(this.ctrlRegion, this.base + TOP, end)
    return top
  }

  private grow(needBytes: number): void {
    const max = this.data.maxByteLength
    if (needBytes > max) {
      throw new AllocatorFullError(`data region full: needs ${needBytes} bytes, maximum is ${max}`)
    }
    // Growth is never undone by a rollback; it only makes room, and `top` (journaled) says what is used.
    this.data.grow(Math.min(max, Math.max(needBytes, this.data.byteLength * 2)))
    this.ensure(needBytes)
  }
}

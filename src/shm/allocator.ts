/**
 * A binary buddy allocator over one growable SharedArrayBuffer (the data region). Blocks are powers of two
 * from 16 bytes, each aligned to its own size (relative to unit {@link ORIGIN}); a free list per size class.
 * An empty class is served by splitting the smallest larger free block into halves (buddies), then by
 * carving fresh space at `top`, growing the buffer (doubling, capped at its `maxByteLength`) as needed.
 * A freed block merges with its buddy whenever the buddy is free too, and the merged block with its
 * buddy, and so on: free memory is always held as the largest aligned blocks it can form, so memory freed
 * by small values serves a large one (fill the region with 4 000-byte values, free them all, and one
 * block of the whole region's size can be allocated again).
 *
 * Fragmentation bound: a payload of `n` bytes takes one block of less than `2(n + 8)` bytes (at most 2×
 * per block, header included); free space is never stranded in pieces that could merge (no two free
 * buddies coexist), so a request fails only when no free aligned block of its class exists below the cap.
 *
 * Why a buddy system: merging is O(1) per level (the buddy's address is arithmetic, its header says whether
 * it is free), every change is a handful of words the undo journal can log, and the size classes keep
 * churn of same-sized values flat. A first-fit heap with boundary tags would pack tighter but needs
 * searches and splits of arbitrary size under the commit lock.
 *
 * Addresses are in 8-byte units (0 = null); block `b` starts at byte `8b`. Units 0 and 1 stay unused, so
 * blocks are aligned relative to unit 2 ({@link ORIGIN}): block `b` of class `c` (`2 << c` units) has
 * `(b - 2) % (2 << c) === 0`, and its buddy is the other half of their aligned parent.
 *
 * Block layout (Int32 words from byte `8b`):
 *
 * | word | allocated                      | free                                         |
 * |------|--------------------------------|----------------------------------------------|
 * | 0    | size class `c` (16 << c bytes) | {@link FREE_MARK} + size class               |
 * | 1    | payload length in bytes        | next free block of the class (0 = end)       |
 * | 2    | payload…                       | previous free block of the class (0 = first) |
 * | 3..  | payload…                       | unused                                       |
 *
 * Everything below `top` is a block (allocated or free): the region up to `top` is tiled by aligned
 * blocks, so a buddy's header is always a block's header. Fresh space is carved at an aligned address; the
 * gap before it becomes free blocks.
 *
 * Allocator words (Int32, in the control region from `base`):
 *
 * | word        | name  | meaning                                           |
 * |-------------|-------|---------------------------------------------------|
 * | 0           | top   | first never-allocated unit                        |
 * | 1           | used  | units in allocated blocks (headers included)      |
 * | 2 .. 2+31   | heads | first free block of each size class (0 = none)    |
 *
 * Every change to these words and to block headers goes through the {@link UndoJournal}, so a commit
 * that dies mid-allocation is rolled back exactly. Payload bytes of a fresh block are not journaled.
 *
 * Thread contract: `alloc`/`free` only by the holder of the commit lock, never blocking (growing the
 * buffer is a synchronous `grow`). `blockLength`/`payloadOffset` by any thread (lock-free readers validate
 * what they read with the sequence word that guards the pointer; a free block's header reads as torn).
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
/** First allocatable unit (unit 0 and 1 stay unused so that 0 means null); blocks align relative to it. */
export const ORIGIN = 2
/** Added to the class in word 0 of a free block (so a reader takes a free block's header for a torn one). */
export const FREE_MARK = 0x100

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

  /** Any thread. Makes the views cover the whole region as it is now (another thread may have grown it). */
  refresh(): void {
    this.ensure(this.data.byteLength)
  }

  /** Main thread, before sharing. */
  static initialize(ctrl: Int32Array, base: number): void {
    Atomics.store(ctrl, base + TOP, ORIGIN)
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
    const b = this.pop(c) || this.split(c) || this.carve(c)
    this.ensure(8 * b + (16 << c))
    const j = this.journal
    j.set(this.dataRegion, 2 * b, c)
    j.set(this.dataRegion, 2 * b + 1, bytes)
    // The first payload word was the free block's back link: logged, so a rollback restores it although
    // the payload copy that overwrites it is not.
    j.set(this.dataRegion, 2 * b + 2, 0)
    j.set(this.ctrlRegion, this.base + USED, this.ctrl[this.base + USED]! + (2 << c))
    return b
  }

  /** Lock holder. Frees `b`, merging it with its buddy (and the result with its buddy …) while free. */
  free(b: number): void {
    const top = this.ctrl[this.base + TOP]!
    this.ensure(8 * top)
    const c = this.i32[2 * b]!
    this.journal.set(this.ctrlRegion, this.base + USED, this.ctrl[this.base + USED]! - (2 << c))
    this.release(b, c, top)
  }

  /**
   * Lock holder. Makes block `b` of class `c` free, merged with every free buddy it can reach; only
   * buddies that end at or below `bound` are looked at (everything there is a block).
   */
  private release(b: number, c: number, bound: number): void {
    const limit = this.data.maxByteLength / 8
    for (; c + 1 < SIZE_CLASSES; c++) {
      const size = 2 * 2 ** c
      if (2 * size > limit) break
      const buddy = ((b - ORIGIN) / size) % 2 === 0 ? b + size : b - size
      if (buddy + size > bound || this.i32[2 * buddy] !== FREE_MARK + c) break
      this.unlinkFree(buddy, c)
      if (buddy < b) b = buddy
    }
    this.pushFree(b, c)
  }

  /** Byte offset of block `b`'s payload. */
  payloadOffset(b: number): number {
    return 8 * b + BLOCK_HEADER_BYTES
  }

  /** Payload length of allocated block `b`, or -1 if `b` is out of bounds (a torn pointer). Any thread. */
  blockLength(b: number): number {
    if (
      b < ORIGIN ||
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
   * caller found reachable (`[block, class]`): every block aligned, no overlap, `[ORIGIN, top)` tiled
   * exactly, list links consistent, and no two free buddies (they would have merged). Returns the
   * problems found, none when consistent. Lock holder, or a quiet store.
   */
  audit(allocated: readonly [number, number][]): string[] {
    const problems: string[] = []
    const top = this.ctrl[this.base + TOP]!
    this.ensure(top * 8)
    const blocks: [start: number, size: number, what: string][] = []
    const claim = (b: number, c: number, what: string) => {
      const size = 2 * 2 ** c
      if ((b - ORIGIN) % size !== 0)
        problems.push(`${what} block ${b} (class ${c}) is not aligned to its size`)
      blocks.push([b, size, `${what} block ${b} (class ${c})`])
    }
    let usedUnits = 0
    for (const [b, c] of allocated) {
      if (this.i32[2 * b] !== c)
        problems.push(`allocated block ${b} has class ${this.i32[2 * b]}, expected ${c}`)
      claim(b, c, 'allocated')
      usedUnits += 2 * 2 ** c
    }
    const free = new Map<number, number>()
    for (let c = 0; c < SIZE_CLASSES; c++) {
      let steps = 0
      let prev = 0
      for (let b = this.ctrl[this.base + HEADS + c]!; b !== 0; prev = b, b = this.i32[2 * b + 1]!) {
        if (++steps > top) {
          problems.push(`free list ${c} has a cycle`)
          break
        }
        if (this.i32[2 * b] !== FREE_MARK + c)
          problems.push(`free block ${b} on list ${c} has header ${this.i32[2 * b]}`)
        if (this.i32[2 * b + 2] !== prev) problems.push(`free block ${b} on list ${c} has a wrong back link`)
        claim(b, c, 'free')
        free.set(b, c)
      }
    }
    for (const [b, c] of free) {
      const size = 2 * 2 ** c
      if (((b - ORIGIN) / size) % 2 === 0 && free.get(b + size) === c)
        problems.push(`free blocks ${b} and ${b + size} are buddies of class ${c} and did not merge`)
    }
    // The blocks, in address order, must tile [ORIGIN, top): each starts where the one before ended.
    blocks.sort((x, y) => x[0] - y[0])
    let at = ORIGIN
    for (const [b, size, what] of blocks) {
      if (b < at) problems.push(`${what} overlaps the block before it`)
      else if (b > at) problems.push(`units [${at}, ${b}) below top belong to no block`)
      at = Math.max(at, b + size)
    }
    if (at !== top) problems.push(`blocks end at unit ${at}, top is ${top}`)
    if (usedUnits !== this.ctrl[this.base + USED]) {
      problems.push(`used is ${this.ctrl[this.base + USED]} units but allocated blocks hold ${usedUnits}`)
    }
    return problems
  }

  /** Lock holder. Puts block `b` of class `c` first on its free list. */
  private pushFree(b: number, c: number): void {
    const j = this.journal
    const head = this.base + HEADS + c
    const first = this.ctrl[head]!
    j.set(this.dataRegion, 2 * b, FREE_MARK + c)
    j.set(this.dataRegion, 2 * b + 1, first)
    j.set(this.dataRegion, 2 * b + 2, 0)
    if (first !== 0) j.set(this.dataRegion, 2 * first + 2, b)
    j.set(this.ctrlRegion, head, b)
  }

  /** Lock holder. Takes free block `b` of class `c` off its list (its header still says free). */
  private unlinkFree(b: number, c: number): void {
    const j = this.journal
    const next = this.i32[2 * b + 1]!
    const prev = this.i32[2 * b + 2]!
    if (prev === 0) j.set(this.ctrlRegion, this.base + HEADS + c, next)
    else j.set(this.dataRegion, 2 * prev + 1, next)
    if (next !== 0) j.set(this.dataRegion, 2 * next + 2, prev)
  }

  private pop(c: number): number {
    const b = this.ctrl[this.base + HEADS + c]!
    if (b !== 0) {
      this.ensure(8 * b + (16 << c))
      this.unlinkFree(b, c)
    }
    return b
  }

  /** Takes the smallest larger free block and splits it down to class `c`, freeing the upper halves. */
  private split(c: number): number {
    let k = c + 1
    while (k < SIZE_CLASSES && this.ctrl[this.base + HEADS + k] === 0) k++
    if (k >= SIZE_CLASSES) return 0
    const b = this.pop(k)
    for (let s = k - 1; s >= c; s--) this.pushFree(b + 2 * 2 ** s, s)
    return b
  }

  /**
   * Carves a fresh block of class `c` at `top`, aligned to its size; the gap before it becomes free blocks
   * (each the largest aligned block that fits), so everything below `top` stays tiled by blocks.
   */
  private carve(c: number): number {
    const size = 2 * 2 ** c
    const top = this.ctrl[this.base + TOP]!
    const at = ORIGIN + Math.ceil((top - ORIGIN) / size) * size
    const end = at + size
    if (end * 8 > this.data.byteLength) this.grow(end * 8)
    this.journal.set(this.ctrlRegion, this.base + TOP, end)
    // Gap blocks grow in size along the gap, so a gap block's buddy lies below it (in the old tiling or
    // an earlier gap block): each merges downwards only, with headers already written.
    for (let g = top; g < at; ) {
      let k = 0
      while (k + 1 < c && (g - ORIGIN) % (4 * 2 ** k) === 0 && g + 4 * 2 ** k <= at) k++
      const next = g + 2 * 2 ** k
      this.release(g, k, next)
      g = next
    }
    return at
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

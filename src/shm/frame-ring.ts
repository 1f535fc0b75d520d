/**
 * A single-producer, single-consumer ring of variable-length byte frames in a SharedArrayBuffer.
 *
 * One thread writes frames ({@link FrameRing.tryWrite}), one other thread reads them
 * ({@link FrameRing.read}). Frames become visible whole or not at all: the producer copies the bytes,
 * then publishes the new tail with one `Atomics.store`; a consumer never reads past the tail it loaded.
 * If the producer is terminated between the copy and the store, the half-written frame is simply never
 * published. Everything published before a producer dies stays readable.
 *
 * Memory layout (byte offsets; the data area starts at {@link FrameRing.HEADER_BYTES}):
 *
 * | offset | size | field | meaning |
 * |-------:|-----:|-------|---------|
 * | 0      | 4    | HEAD  | bytes consumed so far (uint32, wraps); written only by the consumer |
 * | 4      | 4    | TAIL  | bytes published so far (uint32, wraps); written only by the producer |
 * | 8      | 4    | OWNER | thread id + 1 of the producer that claimed the ring; 0 = free |
 * | 12     | 52   | —     | reserved (keeps the data area on its own cache lines) |
 * | 64     | cap  | data  | frames: int32 length, then the payload, padded to 4 bytes; length −1 = wrap to 0 |
 *
 * `cap` is a power of two, so `position & (cap − 1)` is the offset and uint32 wrap-around is harmless.
 *
 * @module
 */

const HEAD = 0
const TAIL = 1
const OWNER = 2
const WRAP_MARK = -1

/** Result of {@link FrameRing.tryWrite}. Hot path: a status, never an exception. */
export const RingWrite = {
  OK: 0,
  /** Not enough free space now; retry after the consumer has read. */
  FULL: 1,
  /** The frame can never fit (larger than half the ring); send it another way. */
  TOO_LARGE: 2,
} as const
export type RingWrite = (typeof RingWrite)[keyof typeof RingWrite]

export class FrameRing {
  /** Bytes before the data area. */
  static readonly HEADER_BYTES = 64
  /** Alignment of the whole structure and of every frame. */
  static readonly ALIGN = 4

  /** Bytes needed for a ring whose data area holds `capacity` bytes (rounded up to a power of two). */
  static byteLength(capacity: number): number {
    return FrameRing.HEADER_BYTES + nextPowerOfTwo(capacity)
  }

  /** Lays out a new, empty ring in `sab` starting at `byteOffset`. Main thread, before sharing `sab`. */
  static initialize(sab: SharedArrayBuffer, byteOffset: number, capacity: number): FrameRing {
    const ring = new FrameRing(sab, byteOffset, nextPowerOfTwo(capacity))
    ring.header.fill(0)
    return ring
  }

  private readonly header: Int32Array
  private readonly data: Uint8Array
  private readonly view: DataView
  private readonly mask: number

  /** Attaches to a ring laid out by {@link FrameRing.initialize}; any thread. */
  constructor(
    readonly sab: SharedArrayBuffer,
    readonly byteOffset: number,
    readonly capacity: number,
  ) {
    if (capacity < 64 || (capacity & (capacity - 1)) !== 0) {
      throw new RangeError(`FrameRing capacity must be a power of two ≥ 64, got ${capacity}`)
    }
    if (
      byteOffset % FrameRing.ALIGN !== 0 ||
      byteOffset + FrameRing.HEADER_BYTES + capacity > sab.byteLength
    ) {
      throw new RangeError(
        `FrameRing at offset ${byteOffset} with capacity ${capacity} does not fit its buffer`,
      )
    }
    this.header = new Int32Array(sab, byteOffset, FrameRing.HEADER_BYTES / 4)
    this.data = new Uint8Array(sab, byteOffset + FrameRing.HEADER_BYTES, capacity)
    this.view = new DataView(sab, byteOffset + FrameRing.HEADER_BYTES, capacity)
    this.mask = capacity - 1
  }

  /** The largest frame payload this ring accepts. */
  get maxFrameBytes(): number {
    return this.capacity / 2 - 4
  }

  /**
   * Claims the ring for the calling thread. Producer thread; never blocks.
   * @returns false if another live producer holds it.
   */
  claim(threadId: number): boolean {
    // CAS so two starting threads never share a ring.
    return Atomics.compareExchange(this.header, OWNER, 0, threadId + 1) === 0
  }

  /** The producer's thread id, or -1 if free. Any thread. */
  owner(): number {
    return Atomics.load(this.header, OWNER) - 1
  }

  /**
   * Frees a ring whose producer is gone and drops anything it left unread. Consumer thread, after its
   * last {@link read}; never blocks.
   */
  release(): void {
    // Reset positions before clearing the owner so the next claimer starts on an empty ring.
    Atomics.store(this.header, HEAD, 0)
    Atomics.store(this.header, TAIL, 0)
    Atomics.store(this.header, OWNER, 0)
  }

  /**
   * Copies one frame into the ring and publishes it. Producer thread only; never blocks.
   * The payload is `bytes[0, length)`.
   */
  tryWrite(bytes: Uint8Array, length = bytes.length): RingWrite {
    if (length > this.maxFrameBytes) return RingWrite.TOO_LARGE
    const need = 4 + align4(length)
    // Acquire: the consumer's HEAD store happens after it finished reading the bytes we may now reuse.
    const head = Atomics.load(this.header, HEAD) >>> 0
    const tail = this.header[TAIL]! >>> 0 // only this thread writes TAIL
    const used = (tail - head) >>> 0
    const offset = tail & this.mask
    const toEnd = this.capacity - offset
    const wraps = toEnd < need
    const total = wraps ? toEnd + need : need
    if (this.capacity - used < total) return RingWrite.FULL
    let at = offset
    if (wraps) {
      this.view.setInt32(offset, WRAP_MARK, true)
      at = 0
    }
    this.view.setInt32(at, length, true)
    this.data.set(length === bytes.length ? bytes : bytes.subarray(0, length), at + 4)
    // Release: publishes the frame bytes above together with the new tail.
    Atomics.store(this.header, TAIL, (tail + total) | 0)
    return RingWrite.OK
  }

  /**
   * Calls `onFrame` for every published, unread frame, oldest first, then frees their space.
   * Consumer thread only; never blocks. The view passed to `onFrame` is valid only during the call.
   * @returns the number of frames read.
   */
  read(onFrame: (frame: Uint8Array) => void): number {
    // Acquire: every frame byte before this tail was written before the producer's TAIL store.
    const tail = Atomics.load(this.header, TAIL) >>> 0
    let head = this.header[HEAD]! >>> 0 // only this thread writes HEAD
    let frames = 0
    try {
      while (head !== tail) {
        const offset = head & this.mask
        const toEnd = this.capacity - offset
        let at = offset
        let skipped = 0
        if (toEnd < 4 || this.view.getInt32(offset, true) === WRAP_MARK) {
          skipped = toEnd
          at = 0
        }
        const length = this.view.getInt32(at, true)
        if (length < 0 || length > this.maxFrameBytes) {
          throw new RangeError(`FrameRing corrupted: frame length ${length} at offset ${at}`)
        }
        head = (head + skipped + 4 + align4(length)) >>> 0
        frames++
        onFrame(this.data.subarray(at + 4, at + 4 + length))
      }
    } finally {
      // Release: tells the producer the bytes up to here may be overwritten; wakes it if it waits for space.
      Atomics.store(this.header, HEAD, head | 0)
      if (frames > 0) Atomics.notify(this.header, HEAD)
    }
    return frames
  }

  /** True when nothing is published and unread. Any thread. */
  isEmpty(): boolean {
    return Atomics.load(this.header, HEAD) === Atomics.load(this.header, TAIL)
  }

  /**
   * Waits until the consumer frees space or `timeoutMs` passes. Producer thread (a worker: it blocks).
   */
  waitForSpace(timeoutMs: number): void {
    const head = Atomics.load(this.header, HEAD)
    // Woken by the consumer's notify after it moves HEAD; the timeout bounds the wait if it never does.
    Atomics.wait(this.header, HEAD, head, timeoutMs)
  }
}

function align4(n: number): number {
  return (n + 3) & ~3
}

function nextPowerOfTwo(n: number): number {
  let p = 64
  while (p < n) p *= 2
  return p
}

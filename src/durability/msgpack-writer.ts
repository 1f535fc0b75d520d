/**
 * A msgpack writer for the run log's batch frames: arrays, strings, numbers, nil and already-packed
 * values, written in order into one buffer that owns its memory (so it can be transferred to the writer
 * thread, and nothing else is detached with it). It walks no object graph: the frame's shape is known,
 * and every value inside it is handed over as the bytes msgpackr packed. Main thread.
 *
 * What it writes decodes with any msgpack decoder: array headers are `array32` (the count is filled in
 * at the end), strings `str8` or `str32`, integers `uint` of the smallest size and every other number
 * `float64`, packed values `bin`.
 *
 * @module
 */
import { Packr, RESET_BUFFER_MODE, REUSE_BUFFER_MODE } from 'msgpackr'

/**
 * What `pack(value, REUSE_BUFFER_MODE)` returns: msgpackr's own buffer with the value at `[start, end)`,
 * or, for a value that holds one object twice (structured clone ids), a slice holding just the value.
 */
type Reused = Buffer & { start?: number; end?: number }

/** Packs strings that are not plain ASCII exactly as msgpackr does (lone surrogates included). */
const strings = new Packr({ useRecords: false })

/** The largest batch buffer kept for the next batch; a bigger one (a rare burst) is let go. */
export const MAX_KEPT_BYTES = 4 << 20

export class MsgpackWriter {
  private buf: Buffer
  private pos = 0

  /**
   * @param capacity bytes to start with (it grows as needed).
   * @param reuse memory of an earlier batch to write into when it holds `capacity` and is at most
   * {@link MAX_KEPT_BYTES} (the writer thread hands each batch's buffer back once committed). Batch sizes
   * swing between a burst of admissions and the trickle of ends after it: keeping the larger buffer spares
   * an allocation and a chain of doublings at every swing.
   */
  constructor(capacity: number, reuse?: ArrayBuffer) {
    // Never from Node's shared pool: the buffer is transferred, so it must be the only view of its memory.
    this.buf =
      reuse !== undefined && reuse.byteLength >= capacity && reuse.byteLength <= MAX_KEPT_BYTES
        ? Buffer.from(reuse)
        : Buffer.allocUnsafeSlow(Math.max(64, capacity))
  }

  /** Bytes written so far. */
  get length(): number {
    return this.pos
  }

  /** Reserves an array header whose count {@link setArrayLength} fills in; returns where it is. */
  openArray(): number {
    this.room(5)
    const at = this.pos
    this.buf[at] = 0xdd
    this.pos += 5
    return at
  }

  setArrayLength(at: number, count: number): void {
    this.buf.writeUInt32BE(count, at + 1)
  }

  /** An array header of a known count (at most 15: a fixarray; rows are short). */
  array(count: number): void {
    this.room(3)
    if (count < 16) this.buf[this.pos++] = 0x90 | count
    else {
      this.buf[this.pos] = 0xdc
      this.buf.writeUInt16BE(count, this.pos + 1)
      this.pos += 3
    }
  }

  nil(): void {
    this.room(1)
    this.buf[this.pos++] = 0xc0
  }

  num(n: number): void {
    this.room(9)
    const b = this.buf
    if (n >= 0 && n <= 0xffffffff && Number.isInteger(n)) {
      if (n < 0x80) b[this.pos++] = n
      else if (n < 0x10000) {
        b[this.pos] = 0xcd
        b.writeUInt16BE(n, this.pos + 1)
        this.pos += 3
      } else {
        b[this.pos] = 0xce
        b.writeUInt32BE(n, this.pos + 1)
        this.pos += 5
      }
    } else {
      // Negative, fractional or beyond 32 bits (epoch milliseconds): a float64 holds each exactly.
      b[this.pos] = 0xcb
      b.writeDoubleBE(n, this.pos + 1)
      this.pos += 9
    }
  }

  numOrNil(n: number | null | undefined): void {
    if (n === null || n === undefined) this.nil()
    else this.num(n)
  }

  str(s: string): void {
    const n = s.length
    this.room(5 + n)
    const b = this.buf
    const start = this.pos + (n < 256 ? 2 : 5)
    for (let i = 0; i < n; i++) {
      const c = s.charCodeAt(i)
      if (c >= 0x80) {
        this.packed(strings.pack(s, RESET_BUFFER_MODE))
        return
      }
      b[start + i] = c
    }
    if (n < 256) {
      b[this.pos] = 0xd9
      b[this.pos + 1] = n
    } else {
      b[this.pos] = 0xdb
      b.writeUInt32BE(n, this.pos + 1)
    }
    this.pos = start + n
  }

  strOrNil(s: string | null | undefined): void {
    if (s === null || s === undefined) this.nil()
    else this.str(s)
  }

  /** `value` packed by `packr`, as a `bin`; after `mark` when given (a byte the reader tells formats by). */
  value(packr: Packr, value: unknown, mark?: number): void {
    const t = packr.pack(value, REUSE_BUFFER_MODE | RESET_BUFFER_MODE) as Reused
    this.bin(t, t.start ?? 0, t.end ?? t.length, mark)
  }

  /** `bytes[from, to)` (one packed value) as a `bin`; after `mark` when given. */
  bin(bytes: Uint8Array, from: number, to: number, mark?: number): void {
    const n = to - from
    this.binHeader(mark === undefined ? n : n + 1, n)
    const b = this.buf
    if (mark !== undefined) b[this.pos++] = mark
    if (n <= 32) for (let i = 0; i < n; i++) b[this.pos + i] = bytes[from + i]!
    else b.set(bytes.subarray(from, to), this.pos)
    this.pos += n
  }

  /**
   * A number, or a string of at most 252 ASCII characters, as msgpack inside a `bin` after `mark`: what
   * `value` writes for it, without a trip through msgpackr (any msgpack reader decodes both alike). False,
   * having written nothing, for any other string.
   */
  scalar(v: number | string, mark: number): boolean {
    if (typeof v === 'number') {
      // A bin8 whose length byte is filled in once the number is written (at most 9 bytes, and the mark).
      const start = this.pos
      this.binHeader(0, 10)
      this.buf[this.pos++] = mark
      this.num(v)
      this.buf[start + 1] = this.pos - start - 2
      return true
    }
    const n = v.length
    // The bin holds the mark, a str8 header and the characters: at most 255 bytes, one length byte.
    if (n > 252) return false
    this.room(n + 5)
    const b = this.buf
    const at = this.pos + 5
    for (let i = 0; i < n; i++) {
      const c = v.charCodeAt(i)
      if (c >= 0x80) return false
      b[at + i] = c
    }
    b[this.pos] = 0xc4
    b[this.pos + 1] = n + 3
    b[this.pos + 2] = mark
    b[this.pos + 3] = 0xd9
    b[this.pos + 4] = n
    this.pos = at + n
    return true
  }

  /** A `bin` header for `size` bytes, with room for `content` bytes after it. */
  private binHeader(size: number, content: number): void {
    this.room(6 + content)
    const b = this.buf
    if (size < 0x100) {
      b[this.pos] = 0xc4
      b[this.pos + 1] = size
      this.pos += 2
    } else if (size < 0x10000) {
      b[this.pos] = 0xc5
      b.writeUInt16BE(size, this.pos + 1)
      this.pos += 3
    } else {
      b[this.pos] = 0xc6
      b.writeUInt32BE(size, this.pos + 1)
      this.pos += 5
    }
  }

  /** The bytes written, as a view of the writer's own buffer (transfer `.buffer`); the writer is done. */
  finish(): Uint8Array<ArrayBuffer> {
    return new Uint8Array(this.buf.buffer as ArrayBuffer, 0, this.pos)
  }

  /** Msgpack bytes as they are (a whole item). */
  private packed(bytes: Uint8Array): void {
    this.room(bytes.length)
    this.buf.set(bytes, this.pos)
    this.pos += bytes.length
  }

  private room(n: number): void {
    if (this.pos + n <= this.buf.length) return
    const grown = Buffer.allocUnsafeSlow(Math.max(this.buf.length * 2, this.pos + n))
    this.buf.copy(grown, 0, 0, this.pos)
    this.buf = grown
  }
}

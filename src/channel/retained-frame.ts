/**
 * A delivered frame kept past its delivery, so records of it can be decoded again when asked for.
 *
 * @module
 */
import { decodeWithTable } from './msgpack.js'

/** A frame's bytes and structure table, kept past its delivery to decode records from it later. */
export class RetainedFrame {
  constructor(
    private readonly bytes: Uint8Array,
    private readonly table: unknown[],
  ) {}

  /** Bytes this kept frame holds alive. */
  get byteLength(): number {
    return this.bytes.length
  }

  /** Decodes the record in `[start, end)` again, as a new object. */
  decode(start: number, end: number): unknown {
    return decodeWithTable(this.table, this.bytes.subarray(start, end))
  }
}

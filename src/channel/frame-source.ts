/**
 * Where each record of a delivered frame lies, so a consumer can keep records as bytes.
 *
 * @module
 */
import type { Unpackr } from 'msgpackr'
import { liveTable, sameEntries } from './msgpack.js'
import { RetainedFrame } from './retained-frame.js'

/** A record kept as bytes: the frame holding it and its byte range there. */
export interface RecordBytes {
  frame: RetainedFrame
  start: number
  end: number
}

/**
 * Frames up to this size are kept whole by {@link FrameSource.keep}; from a larger one only the record's
 * own bytes are copied, so a small decision never pins a frame full of large outputs or event data.
 */
const WHOLE_FRAME_BYTES = 16 * 1024

/**
 * Where each record of the frame being delivered lies in the frame's bytes, so a consumer can keep a
 * record as bytes instead of as the decoded object graph and decode it again only when asked for it.
 * Decoding a record alone needs the msgpack structure table its frame was decoded with; {@link keep}
 * pairs the bytes (the channel decodes from its own copy of each frame) with that table. Main thread;
 * valid only during the listener call.
 */
export class FrameSource {
  private frame: Uint8Array | undefined
  private unpackr: Unpackr | undefined
  /** The decoder's structure table as the frame began, shared with earlier frames while it is unchanged. */
  private table: unknown[] | undefined
  /** Whether the table stayed as it was through the frame (undefined until first asked). */
  private standalone: boolean | undefined
  /** The whole frame as kept, once a record of a small frame asked for it. */
  private whole: RetainedFrame | undefined
  private starts = new Int32Array(256)
  private ends = new Int32Array(256)
  private count = 0
  private readonly tables = new WeakMap<Unpackr, unknown[]>()

  /** @internal Starts a frame; `frame` is the channel's own copy, never written again. */
  begin(frame: Uint8Array, unpackr: Unpackr): this {
    this.frame = frame
    this.unpackr = unpackr
    this.standalone = undefined
    this.whole = undefined
    this.count = 0
    // msgpackr replaces a structure when it is (re)defined and never edits one in place, so a shallow copy
    // of the table decodes, for good, any record read while the table looked like this.
    const live = liveTable(unpackr)
    let table = this.tables.get(unpackr)
    if (table === undefined || !sameEntries(table, live)) {
      table = live.slice()
      this.tables.set(unpackr, table)
    }
    this.table = table
    return this
  }

  /** @internal Notes the byte range of the next record. */
  add(start: number, end: number): void {
    if (this.count === this.starts.length) {
      const starts = new Int32Array(this.count * 2)
      const ends = new Int32Array(this.count * 2)
      starts.set(this.starts)
      ends.set(this.ends)
      this.starts = starts
      this.ends = ends
    }
    this.starts[this.count] = start
    this.ends[this.count] = end
    this.count++
  }

  /** The encoded size in bytes of record `index` of the frame being delivered. */
  bytesOf(index: number): number {
    return this.ends[index]! - this.starts[index]!
  }

  /** @internal Ends the frame: nothing of it may be read any more. */
  end(): void {
    this.frame = undefined
    this.unpackr = undefined
    this.table = undefined
    this.whole = undefined
  }

  /**
   * Record `index` kept past the call, able to be decoded again; a frame of up to 16 KiB is kept whole
   * (once, for all its records), from a larger one only the record's own bytes are copied. Undefined when
   * the frame itself defined new record structures (a new shape, or msgpack recycling its structure ids):
   * a record of it may then need a definition made by another record of the frame, so it cannot be
   * decoded alone, and the consumer keeps the decoded object instead. That happens while a stream's
   * shapes are new, rarely after.
   */
  keep(index: number): RecordBytes | undefined {
    const frame = this.keepFrame(index)
    return frame === undefined ? undefined : { frame, start: this.keptStart, end: this.keptEnd }
  }

  /** Where the record lies in the frame the last {@link keepFrame} returned. */
  keptStart = 0
  keptEnd = 0

  /**
   * {@link keep} without making an object, for the aggregator's hot path: the kept frame, with the
   * record's range in {@link keptStart} and {@link keptEnd} until the next call.
   */
  keepFrame(index: number): RetainedFrame | undefined {
    const frame = this.frame
    const table = this.table
    if (frame === undefined || table === undefined) {
      throw new Error('agentpool FrameSource.keep() called outside the record listener')
    }
    this.standalone ??= sameEntries(table, liveTable(this.unpackr!))
    if (!this.standalone) return undefined
    const start = this.starts[index]!
    const end = this.ends[index]!
    if (frame.length <= WHOLE_FRAME_BYTES) {
      this.whole ??= new RetainedFrame(frame, table)
      this.keptStart = start
      this.keptEnd = end
      return this.whole
    }
    this.keptStart = 0
    this.keptEnd = end - start
    return new RetainedFrame(frame.slice(start, end), table)
  }
}

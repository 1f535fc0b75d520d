/**
 * The record channel: worker threads send {@link WireRecord}s to the main thread through one
 * shared-memory {@link FrameRing} per thread, msgpack-encoded and batched into frames.
 *
 * - A worker encodes each record when it is pushed (so a record msgpack cannot carry is refused right
 *   there, attributable to the call that made it) and appends the bytes to a pending buffer; `flush()`
 *   copies the pending buffer into the ring as one frame. Record structures are shared along the frame
 *   sequence of one ring (msgpackr `sequential`), so repeated shapes cost a byte or two of header.
 * - The main thread reads every ring in `drain()`, synchronously. A doorbell word lets it sleep in
 *   `Atomics.waitAsync` (never `Atomics.wait`: the main thread must not block) and wake when a producer
 *   publishes while it sleeps.
 * - Shared memory outlives a thread: frames a thread published before it died are still drained.
 *
 * Memory layout of the channel's SharedArrayBuffer:
 *
 * | offset | size | field   | meaning |
 * |-------:|-----:|---------|---------|
 * | 0      | 4    | SEQ     | doorbell sequence; bumped and notified by a producer that finds WAITING = 1 |
 * | 4      | 4    | WAITING | 1 while the consumer sleeps (or is about to) on SEQ |
 * | 8      | 56   | —       | reserved |
 * | 64     | n×R  | rings   | `slots` {@link FrameRing}s of R = `FrameRing.byteLength(ringBytes)` bytes each |
 *
 * @module
 */
import { Packr, Unpackr } from 'msgpackr'
import { RecordInvalidError } from '../errors.js'
import type { WireRecord } from '../protocol.js'
import { FrameRing, RingWrite } from '../shm/index.js'

const SEQ = 0
const WAITING = 1
const BELL_BYTES = 64
/** A zero-length frame tells the consumer the producer restarted its msgpack structure table. */
const RESET_FRAME = new Uint8Array(0)
/** How long a producer sleeps at most, per slice, waiting for ring space. */
const SPACE_WAIT_SLICE_MS = 20

/** What a worker needs to attach; structured-clonable. */
export interface RecordChannelHandles {
  sab: SharedArrayBuffer
  slots: number
  ringBytes: number
}

export interface RecordChannelOptions {
  /** Rings, one per live thread; keep spares for replacement threads. */
  slots: number
  /** Data bytes per ring (rounded up to a power of two). @default 1 MiB */
  ringBytes?: number
}

function ringAt(h: RecordChannelHandles, i: number): FrameRing {
  return new FrameRing(h.sab, BELL_BYTES + i * FrameRing.byteLength(h.ringBytes), h.ringBytes)
}

function encodingError(err: unknown, record: { k?: unknown }): RecordInvalidError {
  const why = err instanceof Error ? err.message : String(err)
  return new RecordInvalidError(
    `${withArticle(String(record.k))} record could not be encoded (${why}); nothing of it was sent`,
    {
      kind: record.k,
    },
  )
}

/**
 * Worker side: the producer of one ring. Create once per thread with {@link RecordWriter.attach}.
 * All methods: the owning worker thread only. `push` never blocks; `flush` blocks only while the ring is
 * full (the main thread is behind), in slices.
 */
export class RecordWriter {
  private packr = new Packr({ sequential: true, moreTypes: true })
  private pending: Uint8Array = new Uint8Array(64 * 1024)
  private pendingBytes = 0
  private pendingRecords = 0
  private needsReset = false

  private constructor(
    private readonly ring: FrameRing,
    private readonly bell: Int32Array,
  ) {}

  /**
   * Claims a free ring for the calling thread.
   * @throws Error if every ring is taken (more live threads than `slots`).
   */
  static attach(handles: RecordChannelHandles, threadId: number): RecordWriter {
    const bell = new Int32Array(handles.sab, 0, BELL_BYTES / 4)
    for (let i = 0; i < handles.slots; i++) {
      const ring = ringAt(handles, i)
      if (ring.claim(threadId)) return new RecordWriter(ring, bell)
    }
    throw new Error(`agentpool record channel: all ${handles.slots} rings are taken; raise the slot count`)
  }

  /** Records pushed and not yet flushed. */
  get pendingCount(): number {
    return this.pendingRecords
  }

  /**
   * Encodes `record` and appends it to the pending frame.
   * @throws RecordInvalidError if msgpack cannot carry the record; nothing of it is kept.
   */
  push(record: WireRecord): void {
    let bytes: Uint8Array
    try {
      bytes = this.packr.pack(record)
    } catch (err) {
      // A failed pack may have registered a record structure the consumer never sees: restart both tables.
      this.packr = new Packr({ sequential: true, moreTypes: true })
      this.needsReset = true
      throw encodingError(err, record as { k?: unknown })
    }
    if (bytes.length > this.ring.maxFrameBytes) {
      // The bytes may define a record structure; dropping them means restarting both tables.
      this.packr = new Packr({ sequential: true, moreTypes: true })
      this.needsReset = true
      throw new RecordInvalidError(
        `${withArticle(String((record as { k?: unknown }).k))} record of ${bytes.length} bytes is larger than the record channel carries (${this.ring.maxFrameBytes} bytes)`,
        { kind: (record as { k?: unknown }).k, bytes: bytes.length, tooLarge: true },
      )
    }
    if (this.needsReset) this.startNewStructureTable()
    this.append(bytes)
    this.pendingRecords++
  }

  /** Publishes everything pushed so far as one frame. Blocks while the ring is full. */
  flush(): void {
    if (this.pendingBytes === 0) return
    this.writeFrame(this.pending, this.pendingBytes)
    this.pendingBytes = 0
    this.pendingRecords = 0
  }

  private startNewStructureTable(): void {
    // Frames already encoded with the old table go first, then the marker that resets the consumer's.
    this.flush()
    this.writeFrame(RESET_FRAME, 0)
    this.needsReset = false
  }

  private append(bytes: Uint8Array): void {
    const need = this.pendingBytes + bytes.length
    if (need > this.ring.maxFrameBytes && this.pendingBytes > 0) this.flush()
    if (this.pendingBytes + bytes.length > this.pending.length) {
      const grown = new Uint8Array(Math.max(this.pending.length * 2, this.pendingBytes + bytes.length))
      grown.set(this.pending.subarray(0, this.pendingBytes))
      this.pending = grown
    }
    this.pending.set(bytes, this.pendingBytes)
    this.pendingBytes += bytes.length
  }

  private writeFrame(bytes: Uint8Array, length: number): void {
    for (;;) {
      const status = this.ring.tryWrite(bytes, length)
      if (status === RingWrite.OK) break
      if (status === RingWrite.TOO_LARGE) {
        throw new RecordInvalidError(
          `a record of ${length} bytes is larger than the record channel carries (${this.ring.maxFrameBytes} bytes)`,
          { bytes: length },
        )
      }
      this.ring_bell()
      this.ring.waitForSpace(SPACE_WAIT_SLICE_MS)
    }
    this.ring_bell()
  }

  private ring_bell(): void {
    // Only wake the consumer when it sleeps: a CAS so exactly one producer pays for the notify.
    if (Atomics.load(this.bell, WAITING) === 1 && Atomics.compareExchange(this.bell, WAITING, 1, 0) === 1) {
      Atomics.add(this.bell, SEQ, 1)
      Atomics.notify(this.bell, SEQ)
    }
  }
}

/**
 * Main side: the consumer of every ring. Main thread only; no method blocks.
 */
export class RecordChannel {
  readonly handles: RecordChannelHandles
  private readonly rings: FrameRing[]
  private readonly unpackrs: Unpackr[]
  private readonly bell: Int32Array
  private listener: (records: WireRecord[], source: FrameSource) => void = () => {}
  private readonly source = new FrameSource()
  private listening = false
  private draining = false

  private constructor(handles: RecordChannelHandles) {
    this.handles = handles
    this.bell = new Int32Array(handles.sab, 0, BELL_BYTES / 4)
    this.rings = Array.from({ length: handles.slots }, (_, i) => ringAt(handles, i))
    this.unpackrs = this.rings.map(() => newUnpackr())
  }

  /** Allocates the channel's shared memory. */
  static create(opts: RecordChannelOptions): RecordChannel {
    const ringBytes = FrameRing.byteLength(opts.ringBytes ?? 1 << 20) - FrameRing.HEADER_BYTES
    const sab = new SharedArrayBuffer(BELL_BYTES + opts.slots * FrameRing.byteLength(ringBytes))
    const handles: RecordChannelHandles = { sab, slots: opts.slots, ringBytes }
    for (let i = 0; i < opts.slots; i++) {
      FrameRing.initialize(sab, BELL_BYTES + i * FrameRing.byteLength(ringBytes), ringBytes)
    }
    return new RecordChannel(handles)
  }

  /**
   * Sets the one consumer of decoded records, called once per frame, in ring order per thread. `source`
   * tells where each record lies in the frame, for a consumer that keeps records as bytes (see
   * {@link FrameSource}); it is valid only during the call.
   */
  onRecords(listener: (records: WireRecord[], source: FrameSource) => void): void {
    this.listener = listener
  }

  /**
   * Reads and delivers every published record of every ring, synchronously.
   * Re-entrant calls (from inside the listener) return 0 and leave the rest to the running drain.
   * @returns records delivered.
   */
  drain(): number {
    if (this.draining) return 0
    this.draining = true
    this.delivered = 0
    try {
      for (let i = 0; i < this.rings.length; i++) {
        if (this.rings[i]!.isEmpty()) continue
        this.ringIndex = i
        this.rings[i]!.read(this.onFrame)
      }
    } finally {
      this.draining = false
    }
    return this.delivered
  }

  /** The ring {@link onFrame} reads from, and the records delivered in this drain. */
  private ringIndex = 0
  private delivered = 0
  /** The frame being decoded: its records, kept by {@link onValue}. */
  private frameRecords: WireRecord[] = []

  /** Decodes and delivers one frame of ring {@link ringIndex} (one function for every frame: no closure each). */
  private readonly onFrame = (frame: Uint8Array): void => {
    const i = this.ringIndex
    if (frame.length === 0) {
      this.unpackrs[i] = newUnpackr()
      return
    }
    const unpackr = this.unpackrs[i]!
    const records: WireRecord[] = []
    this.frameRecords = records
    // Decoded from a private copy: msgpackr's native string extraction refuses memory that is shared,
    // and decoding from the ring itself takes about twice as long. The copy is also what a consumer
    // keeps when it retains records as bytes.
    const bytes = frame.slice()
    const source = this.source.begin(bytes, unpackr)
    unpackr.unpackMultiple(bytes, this.onValue)
    this.delivered += records.length
    this.deliver(records, source)
    source.end()
  }

  private readonly onValue = (record: unknown, start?: number, end?: number): void => {
    this.frameRecords.push(record as WireRecord)
    this.source.add(start!, end!)
  }

  /**
   * Hands one frame's records to the listener. A listener that throws must not stop delivery for good (the
   * frame's space is already given back, and the loop must keep waking): the error becomes a warning.
   */
  private deliver(records: WireRecord[], source: FrameSource): void {
    try {
      this.listener(records, source)
    } catch (err) {
      process.emitWarning(err instanceof Error ? err : String(err), 'AgentPoolRecordChannel')
    }
  }

  /**
   * Frees the ring of a thread that has exited, after delivering what it left. Main thread.
   */
  releaseThread(threadId: number): void {
    this.drain()
    for (let i = 0; i < this.rings.length; i++) {
      if (this.rings[i]!.owner() === threadId) {
        this.rings[i]!.release()
        this.unpackrs[i] = newUnpackr()
      }
    }
  }

  /** Starts waking on the doorbell so records are delivered while executions run. */
  listen(): void {
    if (this.listening) return
    this.listening = true
    void this.loop()
  }

  /** Stops waking on the doorbell (a final `drain()` is the caller's). */
  close(): void {
    this.listening = false
    Atomics.store(this.bell, WAITING, 0)
    Atomics.add(this.bell, SEQ, 1)
    Atomics.notify(this.bell, SEQ)
  }

  private async loop(): Promise<void> {
    while (this.listening) {
      this.drain()
      const seq = Atomics.load(this.bell, SEQ)
      // Announce the sleep, then look once more: a frame published before a producer saw WAITING = 1
      // would otherwise wait for the next one.
      Atomics.store(this.bell, WAITING, 1)
      if (this.drain() > 0) continue
      const waited = Atomics.waitAsync(this.bell, SEQ, seq)
      if (waited.async) await waited.value
    }
  }
}

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

function liveTable(unpackr: Unpackr): unknown[] {
  return (unpackr as unknown as { structures: unknown[] }).structures
}

function sameEntries(a: unknown[], b: unknown[]): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

/** Decoders for kept structure tables (several frames share a table while it does not change). */
const tableDecoders = new WeakMap<unknown[], Unpackr>()

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
    let decoder = tableDecoders.get(this.table)
    if (decoder === undefined) {
      // A copy again: the decoder marks its table, and the kept one is shared by frames.
      decoder = new Unpackr({ structures: this.table.slice() as object[], moreTypes: true })
      tableDecoders.set(this.table, decoder)
    }
    return decoder.unpack(this.bytes.subarray(start, end))
  }
}

/**
 * Refuses a value msgpackr would encode wrongly: an object whose own `hasOwnProperty` is not a function and
 * that inherits enumerable keys (msgpackr then writes more values than its record lists, and the frame
 * decodes into garbage). Walks the value once; cheap for the small values records carry.
 * @throws RecordInvalidError naming `what`.
 */
export function assertPackable(value: unknown, what: string, depth = 0): void {
  if (typeof value !== 'object' || value === null || depth > 64) return
  if (Array.isArray(value)) {
    for (const item of value) assertPackable(item, what, depth + 1)
    return
  }
  const o = value as Record<string, unknown>
  if (typeof o.hasOwnProperty !== 'function') {
    for (const key in o) {
      if (!Object.hasOwn(o, key)) {
        throw new RecordInvalidError(
          `${what} holds an object with a non-function own "hasOwnProperty" and inherited enumerable key ${JSON.stringify(key)}; msgpack cannot carry it faithfully — pass a plain object`,
          { key },
        )
      }
    }
  }
  for (const key of Object.keys(o)) assertPackable(o[key], what, depth + 1)
}

function withArticle(word: string): string {
  return `${/^[aeiou]/i.test(word) ? 'an' : 'a'} ${word}`
}

function newUnpackr(): Unpackr {
  return new Unpackr({ sequential: true, moreTypes: true })
}

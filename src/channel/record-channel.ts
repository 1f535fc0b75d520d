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
 * - While records keep coming (the owner's `busy()` says many executions run), the main thread polls every
 *   {@link POLL_MS} instead of sleeping on the doorbell: ringing it is a cross-thread wake-up, which on a
 *   busy machine costs the producing thread far more than the frame it announces (tens of microseconds
 *   against a few). A record then waits at most one poll interval; with one or a few executions running,
 *   the doorbell wakes the main thread at once (see docs/architecture.md, "Record channel").
 * - Shared memory outlives a thread: frames a thread published before it died are still drained.
 * - Memory layout: `layout.ts`; msgpackr: `msgpack.ts` (the only file that touches its internals).
 *
 * @module
 */
import type { Unpackr } from 'msgpackr'
import type { WireRecord } from '../protocol.js'
import { FrameRing } from '../shm/index.js'
import { FrameSource } from './frame-source.js'
import { BELL_BYTES, bellOf, type RecordChannelHandles, ringAt, SEQ, WAITING } from './layout.js'
import { newUnpackr } from './msgpack.js'

/** How long the main thread waits between drains while it polls (see the module comment). */
export const POLL_MS = 1

export interface RecordChannelOptions {
  /** Rings, one per live thread; keep spares for replacement threads. */
  slots: number
  /** Data bytes per ring (rounded up to a power of two). @default 1 MiB */
  ringBytes?: number
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
    this.bell = bellOf(handles)
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
  /** Records delivered since the channel was created (for accounting: CPU per record). */
  recordsDelivered = 0
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
    this.recordsDelivered += records.length
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

  /**
   * Starts delivering records while executions run: polling while `busy()` is true and the last drain
   * found records, else sleeping on the doorbell.
   */
  listen(busy: () => boolean = () => false): void {
    if (this.listening) return
    this.listening = true
    this.busy = busy
    void this.loop()
  }

  private busy: () => boolean = () => false

  /** Stops waking on the doorbell (a final `drain()` is the caller's). */
  close(): void {
    this.listening = false
    Atomics.store(this.bell, WAITING, 0)
    Atomics.add(this.bell, SEQ, 1)
    Atomics.notify(this.bell, SEQ)
  }

  private async loop(): Promise<void> {
    let seen = this.recordsDelivered
    while (this.listening) {
      this.drain()
      // Records came since the last look (from this loop's drains or any other) and more are on the way.
      if (this.recordsDelivered !== seen && this.busy()) {
        seen = this.recordsDelivered
        // Producers do not ring while WAITING is 0: the next drain finds what they published meanwhile.
        Atomics.store(this.bell, WAITING, 0)
        await new Promise<void>((resolve) => setTimeout(resolve, POLL_MS).unref())
        continue
      }
      seen = this.recordsDelivered
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

/**
 * Worker side of the record channel: encodes each record as it is pushed and publishes the pending ones
 * as one frame on the thread's ring. See `record-channel.ts` for the whole path.
 *
 * @module
 */
import { RecordInvalidError } from '../errors.js'
import type { WireRecord } from '../protocol.js'
import { type FrameRing, RingWrite } from '../shm/index.js'
import { bellOf, type RecordChannelHandles, ringAt, SEQ, WAITING } from './layout.js'
import { newCheckPackr, newPackr } from './msgpack.js'

/** A zero-length frame tells the consumer the producer restarted its msgpack structure table. */
const RESET_FRAME = new Uint8Array(0)
/** How long a producer sleeps at most, per slice, waiting for ring space. */
const SPACE_WAIT_SLICE_MS = 20

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
  private packr = newPackr()
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
    const bell = bellOf(handles)
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
      this.packr = newPackr()
      this.needsReset = true
      throw encodingError(err, record as { k?: unknown })
    }
    if (bytes.length > this.ring.maxFrameBytes) {
      // The bytes may define a record structure; dropping them means restarting both tables.
      this.packr = newPackr()
      this.needsReset = true
      throw this.tooLarge(record, bytes.length)
    }
    if (this.needsReset) this.startNewStructureTable()
    this.append(bytes)
    this.pendingRecords++
  }

  private checker: ReturnType<typeof newCheckPackr> | undefined

  /**
   * Throws what {@link push} would throw for `record`, keeping nothing: for a record held back and pushed
   * later (a `serializable` attempt's records wait for its commit), so its call still fails at once.
   */
  check(record: WireRecord): void {
    this.checker ??= newCheckPackr()
    let bytes: Uint8Array
    try {
      bytes = this.checker.pack(record)
    } catch (err) {
      this.checker = undefined
      throw encodingError(err, record as { k?: unknown })
    }
    if (bytes.length > this.ring.maxFrameBytes) throw this.tooLarge(record, bytes.length)
  }

  private tooLarge(record: WireRecord, bytes: number): RecordInvalidError {
    return new RecordInvalidError(
      `${withArticle(String((record as { k?: unknown }).k))} record of ${bytes} bytes is larger than the record channel carries (${this.ring.maxFrameBytes} bytes)`,
      { kind: (record as { k?: unknown }).k, bytes, tooLarge: true },
    )
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

function withArticle(word: string): string {
  return `${/^[aeiou]/i.test(word) ? 'an' : 'a'} ${word}`
}

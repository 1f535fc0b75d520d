/**
 * Leases: one shared word per running job that says whether the job may still write, so a thread can be
 * told "you are done" without a message — and check it under the commit lock, where the answer cannot
 * change before its commit point. Knows nothing about what a job is.
 *
 * The main thread opens a lease per job it hands to a worker and ends it when it considers the job over
 * (however it ended: finished, timed out, cancelled, its thread killed). The worker checks the lease
 * under the commit lock before each commit (`admit`), and marks it `USED` before it first writes what
 * the main thread must clean up after it (`markUsed`). Ending a lease tells the main thread whether that
 * happened. A slot is reused with a new generation, so a stale holder of an old lease is refused too.
 *
 * Memory layout (its own growable SharedArrayBuffer; Int32 words; one 64-byte line per slot so two threads'
 * leases never share a cache line):
 *
 * | word          | name  | meaning                                                                |
 * |---------------|-------|------------------------------------------------------------------------|
 * | 16s + 0       | state | bits 2..30: generation (≥ 1 once opened); bit 1: ENDED; bit 0: USED     |
 * | 16s + 1       | hold  | the commit lock's owner word at the lease's last admitted acquire       |
 * | 16s + 2..15   | —     | padding                                                                |
 *
 * A slot is opened again only after {@link LeaseTable.release}: the main thread releases a lease once its
 * job's thread can no longer use it (the message that carried it settled), so a lease that names the
 * holder of the commit lock ({@link LeaseTable.holds}) still names the same job, ended or not.
 *
 * Thread contract: `open`, `end`, `release`, `holds` — the main thread, never block. `admit`, `markUsed`,
 * `clearUsed` — the worker running the lease's job, never block.
 *
 * @module
 */

const SLOT_WORDS = 16
const SLOT_BYTES = SLOT_WORDS * 4
const STATE = 0
const HOLD = 1
const USED = 1
const ENDED = 2
const GEN_SHIFT = 2
/** Generations wrap below 2^29 (they must fit bits 2..30 and stay ≥ 1). */
const GEN_LIMIT = 1 << 29
const INITIAL_SLOTS = 256
/** Most leases open at once (the buffer grows up to this many slots: 16 MiB reserved, 16 KiB used at first). */
export const MAX_LEASES = 1 << 18

/** One lease: its slot and the generation it was opened with. Structured-clonable. */
export interface Lease {
  slot: number
  gen: number
}

/** What {@link LeaseTable.end} found. */
export const LeaseEnd = {
  /** Ended now; the job never marked it used. */
  CLEAN: 0,
  /** Ended now; the job marked it used: the caller cleans up after it. */
  USED: 1,
  /** Was ended already (or is not this lease any more): nothing to do. */
  STALE: 2,
} as const
export type LeaseEnd = (typeof LeaseEnd)[keyof typeof LeaseEnd]

export class LeaseTable {
  private readonly words: Int32Array
  /** Main thread: slots free to open, and the generation each slot was last opened with. */
  private readonly free: number[] = []
  private readonly gens: number[] = []

  private constructor(readonly buffer: SharedArrayBuffer) {
    // Length-tracking: a worker sees the slots the main thread adds by growing the buffer.
    this.words = new Int32Array(buffer)
  }

  /** Main thread: a new table. */
  static create(): LeaseTable {
    const table = new LeaseTable(
      new SharedArrayBuffer(INITIAL_SLOTS * SLOT_BYTES, { maxByteLength: MAX_LEASES * SLOT_BYTES }),
    )
    table.addSlots(0, INITIAL_SLOTS)
    return table
  }

  /** Any thread: attaches to a table made by {@link create}. */
  static attach(buffer: SharedArrayBuffer): LeaseTable {
    if (!(buffer instanceof SharedArrayBuffer) || !buffer.growable)
      throw new TypeError('LeaseTable.attach: not a lease table buffer')
    return new LeaseTable(buffer)
  }

  /** Main thread, never blocks. Opens a lease; throws RangeError when {@link MAX_LEASES} are open. */
  open(): Lease {
    if (this.free.length === 0) this.grow()
    const slot = this.free.pop()!
    const gen = (this.gens[slot]! % (GEN_LIMIT - 1)) + 1
    this.gens[slot] = gen
    // Publishes the new generation before the lease travels to its worker (postMessage orders after it).
    Atomics.store(this.words, slot * SLOT_WORDS + STATE, gen << GEN_SHIFT)
    return { slot, gen }
  }

  /**
   * Main thread, never blocks. Ends `lease`: its job may not write any more. Returns whether its job had
   * marked it used — then the caller cleans up after the job, after making sure no commit admitted before
   * the end is still in flight (take the commit lock once). The slot stays taken until {@link release}.
   */
  end(lease: Lease): LeaseEnd {
    const at = lease.slot * SLOT_WORDS + STATE
    const mine = lease.gen << GEN_SHIFT
    for (;;) {
      const cur = Atomics.load(this.words, at)
      if ((cur & ~USED) !== mine) return LeaseEnd.STALE
      // CAS, not OR: the worker may set USED at the same moment, and must not miss that it ended.
      if (Atomics.compareExchange(this.words, at, cur, cur | ENDED) === cur)
        return (cur & USED) !== 0 ? LeaseEnd.USED : LeaseEnd.CLEAN
    }
  }

  /** Main thread, never blocks. Frees an ended lease's slot for {@link open}. Call once per lease. */
  release(lease: Lease): void {
    if ((Atomics.load(this.words, lease.slot * SLOT_WORDS + STATE) & ENDED) === 0)
      throw new Error('LeaseTable.release: the lease has not ended')
    this.free.push(lease.slot)
  }

  /** Main thread. Whether `lease`'s job was the one admitted under the lock holding it with `ownerWord`. */
  holds(lease: Lease, ownerWord: number): boolean {
    return (
      ownerWord !== 0 &&
      Atomics.load(this.words, lease.slot * SLOT_WORDS + HOLD) === ownerWord &&
      Atomics.load(this.words, lease.slot * SLOT_WORDS + STATE) >>> GEN_SHIFT === lease.gen
    )
  }

  /**
   * The lease's worker, holding the commit lock with `ownerWord`. True when the lease is still open (the
   * commit may go on); records who holds the lock for it (see {@link holds}).
   */
  admit(lease: Lease, ownerWord: number): boolean {
    const at = lease.slot * SLOT_WORDS
    if ((Atomics.load(this.words, at + STATE) & ~USED) !== lease.gen << GEN_SHIFT) return false
    Atomics.store(this.words, at + HOLD, ownerWord)
    return true
  }

  /** The lease's worker. Marks the lease used; false when it has ended (nothing may be written then). */
  markUsed(lease: Lease): boolean {
    const at = lease.slot * SLOT_WORDS + STATE
    const open = lease.gen << GEN_SHIFT
    return Atomics.compareExchange(this.words, at, open, open | USED) === open || this.isUsed(lease)
  }

  /** The lease's worker, after cleaning up itself: the main thread need not. False if it had ended. */
  clearUsed(lease: Lease): boolean {
    const at = lease.slot * SLOT_WORDS + STATE
    const open = lease.gen << GEN_SHIFT
    return Atomics.compareExchange(this.words, at, open | USED, open) === (open | USED)
  }

  private isUsed(lease: Lease): boolean {
    return Atomics.load(this.words, lease.slot * SLOT_WORDS + STATE) === ((lease.gen << GEN_SHIFT) | USED)
  }

  private grow(): void {
    const slots = this.buffer.byteLength / SLOT_BYTES
    if (slots >= MAX_LEASES) throw new RangeError(`more than ${MAX_LEASES} leases open at once`)
    const next = Math.min(MAX_LEASES, slots * 2)
    this.buffer.grow(next * SLOT_BYTES)
    this.addSlots(slots, next)
  }

  private addSlots(from: number, to: number): void {
    for (let s = to - 1; s >= from; s--) {
      this.free.push(s)
      this.gens[s] = 0
    }
  }
}

/**
 * The write-ahead undo journal that makes a commit all-or-nothing even if its thread dies in the middle.
 *
 * Every shared word a commit changes is first logged here with its old value; only then is it written.
 * Payload bytes written into freshly allocated blocks are not logged: until the commit point nothing
 * reachable points at them. The commit point is one store of `state = DONE`. Whoever takes the commit lock
 * next (or the main thread, when it learns the thread died) calls {@link UndoJournal.recover}:
 * `ACTIVE` → every logged word is restored, newest first (a rollback); `DONE` → the commit stands and only
 * the sequence words it left odd are made even.
 *
 * A commit whose every change is known before it starts (the single-key inline-number fast path) logs them
 * all first with {@link UndoJournal.stage} and publishes them with one {@link UndoJournal.publish}, then
 * makes its changes: the same entries, the same recovery, one publishing store instead of one per word.
 *
 * Who reads the state word: only the holder of the commit lock — the next holder (it took the lock with a
 * compare-exchange after the last holder's release store) or one that took the lock over from a dead holder
 * (it learned of the death after the thread stopped, so it sees every store that thread made, in program
 * order up to where it stopped). Neither needs the state stores to be Atomics, only to stay in program
 * order with the changes around them: the state stores of {@link publish}, {@link commitPoint} and
 * {@link idle} are plain, each followed by an Atomics store (a sequence word, the lock's release) that no
 * store is moved across. Sequence words stay Atomics stores: lock-free readers load them.
 *
 * Sequence words (seqlocks that lock-free readers check) are logged with the SEQ flag: a commit makes them
 * odd first and even after the commit point, so a reader never accepts a half-written value. A rollback
 * restores a sequence word to its old value + 2, not to its old value, so a reader that started before the
 * commit still sees that something moved and retries.
 *
 * Memory layout (Int32 words of the journal's own SharedArrayBuffer):
 *
 * | word          | name    | meaning                                                            |
 * |---------------|---------|--------------------------------------------------------------------|
 * | 0             | state   | 0 = IDLE, 1 = ACTIVE (commit in progress), 2 = DONE (commit point)  |
 * | 1             | length  | entries logged in the current commit                                |
 * | 2             | cap     | capacity in entries                                                 |
 * | 4 + 3e        | where   | entry e: region id (bits 0..7) and the SEQ flag (bit 8)             |
 * | 4 + 3e + 1    | index   | Int32 index of the word in that region                              |
 * | 4 + 3e + 2    | old     | the word's value before the commit touched it                       |
 *
 * Thread contract: only the holder of the commit lock calls any method; none blocks.
 *
 * @module
 */

/** Journal states. */
export const JournalState = { IDLE: 0, ACTIVE: 1, DONE: 2 } as const

const STATE = 0
const LENGTH = 1
const CAP = 2
const HEADER_WORDS = 4
const ENTRY_WORDS = 3
const SEQ_FLAG = 0x100

/** Bytes of a journal holding `entries` entries. */
export function journalBytes(entries: number): number {
  return (HEADER_WORDS + entries * ENTRY_WORDS) * 4
}

/** Thrown when one commit touches more words than the journal holds (the caller rolls back). */
export class JournalFullError extends Error {}

export class UndoJournal {
  private readonly cap: number
  /** Test-only fault injection: called after each logged entry with the entry count, and with -1 right after the commit point. */
  onEntry: ((length: number) => void) | undefined

  constructor(
    private readonly log: Int32Array,
    /** Int32 views of each region by id; a growable region's view must track its length. */
    private readonly regions: readonly Int32Array[],
  ) {
    this.cap = Atomics.load(log, CAP)
  }

  /** Main thread, before sharing: an empty, idle journal of `entries` capacity. */
  static initialize(log: Int32Array, entries: number): void {
    if (log.length < HEADER_WORDS + entries * ENTRY_WORDS) throw new RangeError('journal buffer too small')
    Atomics.store(log, CAP, entries)
    Atomics.store(log, LENGTH, 0)
    Atomics.store(log, STATE, JournalState.IDLE)
  }

  state(): number {
    return Atomics.load(this.log, STATE)
  }

  /**
   * The state, read by the holder of the commit lock. A plain read: only lock holders write the state,
   * and taking the lock (a compare-exchange) ordered this thread after the last of them.
   */
  stateLocked(): number {
    return this.log[STATE]!
  }

  /** Starts a commit. */
  begin(): void {
    Atomics.store(this.log, LENGTH, 0)
    // Published before any logged write, so a recoverer that sees a changed word also sees ACTIVE.
    Atomics.store(this.log, STATE, JournalState.ACTIVE)
  }

  /**
   * Batch commit, step 1 (journal idle): logs word `index` of `region` with its current value, unpublished —
   * a recoverer ignores it until {@link publish}. The caller changes no staged word before publishing.
   */
  stage(region: number, index: number): void {
    this.stageEntry(region, index, this.regions[region]![index]!)
  }

  /** Batch commit, step 1: like {@link stage}, for an (even) sequence word the commit will make odd. */
  stageSeq(region: number, index: number): void {
    this.stageEntry(region | SEQ_FLAG, index, this.regions[region]![index]!)
  }

  /**
   * Batch commit, step 2: publishes the staged entries and starts the commit (state ACTIVE). From here the
   * caller may change the staged words (sequence words: odd first, with `Atomics.store`), then
   * {@link commitPoint}, then {@link finish} — or, having made its sequence words even itself, {@link idle}.
   */
  publish(): void {
    this.log[LENGTH] = this.staged
    // A plain store (see the module doc): the caller makes a sequence word odd with an Atomics store before
    // it changes any guarded word, and nothing moves across that store.
    this.log[STATE] = JournalState.ACTIVE
    this.onEntry?.(this.staged)
    this.staged = 0
  }

  /** Logs the word's old value, then writes `value`. */
  set(region: number, index: number, value: number): void {
    const view = this.regions[region]!
    this.append(region, index, view[index]!)
    view[index] = value
  }

  /** Logs a sequence word and makes it odd: readers of what it guards retry until {@link finish}. */
  beginSeq(region: number, index: number): void {
    const view = this.regions[region]!
    const old = Atomics.load(view, index)
    if (old & 1) return
    this.append(region | SEQ_FLAG, index, old)
    // Odd before any guarded word changes: a reader that copies after this sees odd or a later value.
    Atomics.store(view, index, old + 1)
  }

  /** Whether the commit in progress has used more than half the journal (bulk commits stop there). */
  nearlyFull(): boolean {
    return this.log[LENGTH]! > this.cap >> 1
  }

  /** The commit point: from here on the commit stands even if this thread dies. */
  commitPoint(): void {
    // A plain store (see the module doc): every caller's next store to shared memory is an Atomics store
    // (a sequence word made even), which a recoverer that sees it only sees after DONE.
    this.log[STATE] = JournalState.DONE
    this.onEntry?.(-1)
  }

  /** After the commit point: makes the odd sequence words even (publishing the new values) and goes idle. */
  finish(): void {
    const n = Atomics.load(this.log, LENGTH)
    for (let e = 0; e < n; e++) {
      const at = HEADER_WORDS + e * ENTRY_WORDS
      const where = this.log[at]!
      if (!(where & SEQ_FLAG)) continue
      const view = this.regions[where & 0xff]!
      const index = this.log[at + 1]!
      // Even again: publishes every guarded word written in this commit to lock-free readers.
      if (Atomics.load(view, index) & 1) Atomics.add(view, index, 1)
    }
    Atomics.store(this.log, STATE, JournalState.IDLE)
  }

  /**
   * After the commit point of a batch commit whose caller already made its sequence words even: goes idle.
   * (A recoverer that finds the commit DONE instead runs {@link finish}, which evens whatever is still odd.)
   */
  idle(): void {
    // A plain store (see the module doc): the lock's release store follows and publishes it to the next holder.
    this.log[STATE] = JournalState.IDLE
  }

  /** Before the commit point: restores every logged word, newest first, and goes idle. */
  rollback(): void {
    const n = Atomics.load(this.log, LENGTH)
    for (let e = n - 1; e >= 0; e--) {
      const at = HEADER_WORDS + e * ENTRY_WORDS
      const where = this.log[at]!
      const view = this.regions[where & 0xff]!
      const index = this.log[at + 1]!
      const old = this.log[at + 2]!
      if (where & SEQ_FLAG) Atomics.store(view, index, old + 2)
      else view[index] = old
    }
    Atomics.store(this.log, STATE, JournalState.IDLE)
  }

  /** Finishes or rolls back whatever a dead holder left. No-op when idle. */
  recover(): 'idle' | 'rolled_back' | 'completed' {
    const s = this.state()
    if (s === JournalState.ACTIVE) {
      this.rollback()
      return 'rolled_back'
    }
    if (s === JournalState.DONE) {
      this.finish()
      return 'completed'
    }
    return 'idle'
  }

  /** Entries staged for the next {@link publish}. */
  private staged = 0

  private stageEntry(where: number, index: number, old: number): void {
    const n = this.staged
    if (n >= this.cap) throw new JournalFullError(`commit touches more than ${this.cap} words`)
    const at = HEADER_WORDS + n * ENTRY_WORDS
    this.log[at] = where
    this.log[at + 1] = index
    this.log[at + 2] = old
    this.staged = n + 1
  }

  private append(where: number, index: number, old: number): void {
    const n = this.log[LENGTH]!
    if (n >= this.cap) throw new JournalFullError(`commit touches more than ${this.cap} words`)
    const at = HEADER_WORDS + n * ENTRY_WORDS
    this.log[at] = where
    this.log[at + 1] = index
    this.log[at + 2] = old
    // The entry is whole before it counts: a recoverer never replays a half-written entry.
    Atomics.store(this.log, LENGTH, n + 1)
    this.onEntry?.(n + 1)
  }
}

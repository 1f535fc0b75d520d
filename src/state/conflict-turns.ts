/**
 * `ConflictTurns`: progress for `serializable` executions under contention. Optimistic commits alone can
 * starve an execution on a hot key: fresh attempts keep committing inside its read-to-commit window. So
 * an execution that has conflicted {@link TURN_AFTER} times takes its stream's *turn* before its next
 * run; while a turn is held by another execution, a `serializable` commit of that stream waits (at most
 * {@link GATE_WAIT_MS}) before committing. The holder then meets no competing commit from its stream and
 * commits; the waiters commit after it (and conflict only if they really read what it wrote).
 *
 * A turn is no lock: nothing waits on it synchronously, nobody is refused, a waiter stops waiting after a
 * bounded time, and a dead thread's turns are given back by the main thread ({@link releaseThread}).
 *
 * Memory layout (one SharedArrayBuffer of {@link TURN_WORDS} Int32 words; a stream hashes to one word):
 *
 * | word | meaning                                                                  |
 * |------|--------------------------------------------------------------------------|
 * | i    | 0: free; else the holder's tag: `threadId × 2^16 + (execution seq & 0xffff) + 1` |
 *
 * Thread contract: any thread. `take`/`release`/`waitFree` are called by workers (`waitFree` never
 * blocks: it awaits `Atomics.waitAsync`); `releaseThread` by the main thread when a thread died.
 *
 * @module
 */

/** Words in the turn table (streams hash onto them; a collision only makes two streams share turns). */
export const TURN_WORDS = 256
/** Conflicts after which an execution takes its stream's turn. */
export const TURN_AFTER = 3
/** Longest a commit waits for another execution's turn to end. */
export const GATE_WAIT_MS = 250
/** Longest one wait for a free turn before trying again (a turn taken and freed between checks is missed). */
const TAKE_SLICE_MS = 50
const TAG_SPAN = 0x10000
/** Thread ids are folded below this so every tag fits an Int32. */
const MAX_THREAD_TAG = 0x7fff

export class ConflictTurns {
  private readonly words: Int32Array
  private seq = 0
  private readonly threadId: number

  constructor(
    readonly buffer: SharedArrayBuffer,
    threadId: number,
  ) {
    this.words = new Int32Array(buffer)
    this.threadId = threadId % MAX_THREAD_TAG
  }

  /** Main thread: the table's memory. */
  static allocate(): SharedArrayBuffer {
    return new SharedArrayBuffer(TURN_WORDS * 4)
  }

  /** The word of `streamId`. */
  slot(streamId: string): number {
    let h = 2166136261
    for (let i = 0; i < streamId.length; i++) h = Math.imul(h ^ streamId.charCodeAt(i), 16777619)
    return (h >>> 0) % TURN_WORDS
  }

  /** A fresh tag for one execution on this thread. */
  tag(): number {
    this.seq = (this.seq + 1) % (TAG_SPAN - 1)
    return this.threadId * TAG_SPAN + this.seq + 1
  }

  /** Takes the turn of `slot` for `tag`, waiting (asynchronously) while someone else holds it. */
  async take(slot: number, tag: number, signal?: AbortSignal): Promise<void> {
    const w = this.words
    // Compare-and-swap from free: exactly one taker wins; the others wait for its release.
    while (Atomics.compareExchange(w, slot, 0, tag) !== 0) {
      if (signal?.aborted) return
      const held = Atomics.load(w, slot)
      if (held === 0) continue
      const r = Atomics.waitAsync(w, slot, held, TAKE_SLICE_MS)
      if (r.async) await r.value
    }
  }

  /** Gives the turn back if `tag` holds it, and wakes whoever waits for it. */
  release(slot: number, tag: number): void {
    // Only the holder frees the word: a release after a main-thread takeover changes nothing.
    if (Atomics.compareExchange(this.words, slot, tag, 0) === tag) Atomics.notify(this.words, slot)
  }

  /** Resolves once nobody but `tag` holds the turn of `slot`, or after {@link GATE_WAIT_MS}. */
  async waitFree(slot: number, tag: number): Promise<void> {
    const w = this.words
    const until = Date.now() + GATE_WAIT_MS
    for (;;) {
      const held = Atomics.load(w, slot)
      const left = until - Date.now()
      if (held === 0 || held === tag || left <= 0) return
      const r = Atomics.waitAsync(w, slot, held, left)
      if (r.async) await r.value
    }
  }

  /** Whether someone other than `tag` holds the turn of `slot` (a cheap check before {@link waitFree}). */
  heldByOther(slot: number, tag: number): boolean {
    const held = Atomics.load(this.words, slot)
    return held !== 0 && held !== tag
  }

  /** Main thread: frees every turn a dead thread held. */
  releaseThread(threadId: number): void {
    const w = this.words
    for (let i = 0; i < TURN_WORDS; i++) {
      const held = Atomics.load(w, i)
      if (held !== 0 && Math.floor((held - 1) / TAG_SPAN) === threadId % MAX_THREAD_TAG) {
        if (Atomics.compareExchange(w, i, held, 0) === held) Atomics.notify(w, i)
      }
    }
  }
}

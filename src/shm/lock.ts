/**
 * An Atomics mutex whose lock word names its owner, plus the table of dead threads that lets a waiter
 * (or the main thread) take a lock over from a thread that died holding it.
 *
 * Memory layout (Int32 words from `base` in the caller's Int32Array over a SharedArrayBuffer):
 *
 * | word | name    | meaning                                                                      |
 * |------|---------|------------------------------------------------------------------------------|
 * | 0    | owner   | 0 = free; otherwise the holder's tag: bits 0..20 `threadId + 1` (main thread = 1), |
 * |      |         | bits 21..31 the holder's acquisition count (wraps): one holding keeps one value, |
 * |      |         | so a watcher that sees the same word over time knows it is one long holding    |
 * | 1    | waiters | bits 0..29: threads parked (in `Atomics.wait` on word 2); bit 30 (WAKING): a  |
 * |      |         | wake is in flight. Release notifies only if some thread is parked and no wake  |
 * |      |         | is in flight; the woken thread clears WAKING                                   |
 * | 2    | wakes   | wakes sent so far (wraps); parked threads wait on it, so a wake sent between   |
 * |      |         | a waiter's look at the owner and its wait is never lost                        |
 *
 * {@link DeadThreadTable} layout (from its own `base`):
 *
 * | word     | name  | meaning                                                                  |
 * |----------|-------|--------------------------------------------------------------------------|
 * | 0        | count | thread exits recorded so far (monotonic); slot = count % DEAD_RING_SIZE   |
 * | 1 .. 64  | ids   | `threadId + 1` of recently exited threads (0 = empty)                     |
 *
 * Thread ids are never reused within a process, so "this owner is in the dead table" is a stable fact.
 *
 * A thread may arm a one-shot {@link AtomicsLock.guard} before a critical section: the next `acquire`
 * runs it right after taking the lock, with the owner word it stored, and releases the lock again if the
 * guard throws. That is how a caller checks a condition that must hold *under* the lock (an execution
 * that ended must not commit) without a second lock.
 *
 * @module
 */

/** Int32 words a lock occupies. */
export const LOCK_WORDS = 3
/** Recently exited threads remembered for lock takeover. */
export const DEAD_RING_SIZE = 64
/** Int32 words the dead-thread table occupies. */
export const DEAD_TABLE_WORDS = 1 + DEAD_RING_SIZE

const OWNER = 0
/** Bits of the owner word that hold `threadId + 1`; the bits above count acquisitions. */
const THREAD_BITS = 21
const THREAD_MASK = (1 << THREAD_BITS) - 1
const WAITERS = 1
const WAKES = 2
/** Bit of the waiters word: a notify was sent and its thread has not run yet. */
const WAKING = 1 << 30
/**
 * Pause units (one private Atomics load each, a few nanoseconds) a worker spins before it parks in
 * `Atomics.wait`. Critical sections last under a microsecond, and a futex sleep/wake costs tens of
 * microseconds, so spinning through a few holders' turns is the cheaper wait.
 */
const SPIN_TRIES = 4096
/**
 * Pause units (see `pause`) a spinning waiter lets pass after seeing the lock freed before it competes
 * for it. The thread that released it is usually about to take it again, and its next commit is cheapest
 * where its cache lines already are: handing the lock over on every commit moves the lock, journal,
 * history and slot lines between cores each time (a hot key's updates ran at half their one-thread speed
 * that way). About the time a commit spends outside the lock; a waiter still gets the lock whenever the
 * holder pauses, and after half its spin (SPIN_TRIES) it stops deferring and takes the lock at the first
 * chance, so a waiter behind a holder that never pauses does not park (a park and its wake cost far more
 * than a handover).
 */
const HANDOFF_GRACE = 48
/**
 * Longest pause (in pause units) between a waiter's looks at a held lock. Each look shares the lock's
 * cache line, which the holder then has to take back for its next acquire and release: looking less
 * often (exponential backoff) keeps a busy holder fast.
 */
const MAX_BACKOFF = 64
/** A parked waiter wakes at least this often to check whether the owner died. */
const WAIT_SLICE_MS = 5

/** Remembers threads that exited, so a lock they held can be taken over. */
export class DeadThreadTable {
  constructor(
    private readonly i32: Int32Array,
    private readonly base: number,
  ) {
    if (base < 0 || base + DEAD_TABLE_WORDS > i32.length)
      throw new RangeError(`dead table at ${base} out of bounds`)
  }

  /** Any thread (the main thread in practice). Never blocks. */
  add(threadId: number): void {
    const n = Atomics.add(this.i32, this.base, 1)
    // Publishes the id; a waiter's `has` load sees it after it sees the lock word it is waiting on.
    Atomics.store(this.i32, this.base + 1 + (n % DEAD_RING_SIZE), threadId + 1)
  }

  /** Any thread. Never blocks. */
  has(threadId: number): boolean {
    const tag = threadId + 1
    for (let i = 1; i <= DEAD_RING_SIZE; i++) if (Atomics.load(this.i32, this.base + i) === tag) return true
    return false
  }
}

/** The thread id of an owner word (see the layout table); -1 for a free lock. */
export function ownerThread(word: number): number {
  return (word & THREAD_MASK) - 1
}

/**
 * The mutex. Held only inside synchronous critical sections (never across an `await`), so one owner per
 * thread is exact even when a thread runs several executions.
 */
export class AtomicsLock {
  /** `threadId + 1`: the thread bits of this thread's owner words. */
  private readonly tag: number
  /** Acquisitions by this thread so far: the count bits of its next owner word. */
  private count = 0
  /** The owner word of this thread's current holding (valid while it holds the lock). */
  private held = 0
  /**
   * One-shot: the next {@link acquire} on this thread takes it (whether or not it gets the lock) and, once
   * it holds the lock, calls it with the owner word it stored. If it throws, the lock is released and the
   * error propagates from `acquire`. Set it right before the call that acquires; it never outlives that call.
   */
  guard: ((ownerWord: number) => void) | undefined = undefined
  /** This thread's own word for {@link pause}: an Atomics load the compiler cannot drop. */
  private readonly idle = new Int32Array(1)

  constructor(
    private readonly i32: Int32Array,
    private readonly base: number,
    private readonly dead: DeadThreadTable,
    threadId: number,
    /** Main thread: never `Atomics.wait`; spin at most this long, then give up. */
    private readonly mainSpinMs: number,
    private readonly isMain: boolean,
  ) {
    if (base < 0 || base + LOCK_WORDS > i32.length) throw new RangeError(`lock at ${base} out of bounds`)
    if (threadId + 1 > THREAD_MASK)
      throw new RangeError(`thread id ${threadId} does not fit a lock's owner word`)
    this.tag = threadId + 1
  }

  /** Lays out a free lock. Main thread, before any other thread sees the buffer. */
  static initialize(i32: Int32Array, base: number): void {
    Atomics.store(i32, base + OWNER, 0)
    Atomics.store(i32, base + WAITERS, 0)
    Atomics.store(i32, base + WAKES, 0)
  }

  /** Any thread. Never blocks. True when this thread now holds the lock. */
  tryAcquire(): boolean {
    const word = this.nextWord()
    // CAS is the acquire fence: everything the previous owner stored before its release store is visible.
    if (Atomics.compareExchange(this.i32, this.base + OWNER, 0, word) !== 0) return false
    this.held = word
    return true
  }

  /** This thread's next owner word: its thread bits and a new acquisition count. */
  private nextWord(): number {
    this.count = (this.count + 1) & (0xffffffff >>> THREAD_BITS)
    return this.tag | (this.count << THREAD_BITS)
  }

  /**
   * Takes the lock. Returns true when held. Workers: spin, then `Atomics.wait` in {@link WAIT_SLICE_MS}
   * slices, taking the lock over if its owner is in the dead table — may block, never forever once the
   * owner's exit is recorded. Main thread: spins at most `mainSpinMs` (never `Atomics.wait`), taking over
   * dead owners too, and returns false if a live owner still holds it. Throws if this thread holds it
   * already (not re-entrant) instead of waiting for itself forever.
   */
  acquire(): boolean {
    const guard = this.guard
    this.guard = undefined
    if (!this.take()) return false
    if (guard !== undefined) {
      try {
        guard(this.held)
      } catch (err) {
        this.release()
        throw err
      }
    }
    return true
  }

  private take(): boolean {
    if (this.tryAcquire()) return true
    if ((Atomics.load(this.i32, this.base + OWNER) & THREAD_MASK) === this.tag) {
      throw new Error('AtomicsLock is not re-entrant: this thread already holds it')
    }
    // Spin for about SPIN_TRIES pause units in all, looking at the lock word between pauses.
    for (let spent = 0, backoff = 1, looks = 0; spent < SPIN_TRIES; looks++) {
      // Test before test-and-set: a look is a load, which keeps the lock's cache line shared.
      if (Atomics.load(this.i32, this.base + OWNER) !== 0) {
        if ((looks & 63) === 63 && this.takeOverIfDead()) return true
        spent += this.pause(backoff)
        backoff = Math.min(backoff * 2, MAX_BACKOFF)
        continue
      }
      // Freed: leave it to the thread that released it for a moment (see HANDOFF_GRACE), then compete —
      // but only in the first half of the spin: a waiter that kept deferring to a busy holder would park,
      // and every release would then pay a wake system call.
      if (spent < SPIN_TRIES >> 1) {
        spent += this.pause(HANDOFF_GRACE)
        if (Atomics.load(this.i32, this.base + OWNER) !== 0) continue
      } else spent++
      if (this.tryAcquire()) return true
    }
    return this.isMain ? this.spinBounded() : this.park()
  }

  /** Waits `units` loads of a word no other thread touches (no shared cache line moves); returns `units`. */
  private pause(units: number): number {
    for (let k = 0; k < units; k++) Atomics.load(this.idle, 0)
    return units
  }

  /** The holder only. Never blocks. */
  release(): void {
    // Release store: publishes every write of the critical section to the next acquirer.
    Atomics.store(this.i32, this.base + OWNER, 0)
    // One wake at a time: while a woken thread has not run yet, more notifies would only cost this
    // (busy) holder a system call each.
    for (;;) {
      const w = Atomics.load(this.i32, this.base + WAITERS)
      if (w === 0 || (w & WAKING) !== 0) return
      if (Atomics.compareExchange(this.i32, this.base + WAITERS, w, w | WAKING) === w) break
    }
    // Counted before the notify: a parker that read the count earlier sees it move and does not sleep.
    Atomics.add(this.i32, this.base + WAKES, 1)
    Atomics.notify(this.i32, this.base + WAKES, 1)
  }

  /** Any thread. The holder's thread id, or -1 when free. */
  owner(): number {
    return ownerThread(Atomics.load(this.i32, this.base + OWNER))
  }

  /**
   * Any thread. The whole owner word (0 when free): the same non-zero word seen twice means one holding
   * lasted from the first look to the second (see the layout table). For a watchdog.
   */
  ownerWord(): number {
    return Atomics.load(this.i32, this.base + OWNER)
  }

  /** Any thread. Never blocks. If the lock's owner is recorded dead, take the lock over from it. */
  takeOverIfDead(): boolean {
    const cur = Atomics.load(this.i32, this.base + OWNER)
    if (cur === 0 || (cur & THREAD_MASK) === this.tag || !this.dead.has(ownerThread(cur))) return false
    const word = this.nextWord()
    if (Atomics.compareExchange(this.i32, this.base + OWNER, cur, word) !== cur) return false
    this.held = word
    return true
  }

  /**
   * Main thread: milliseconds spent in bounded spins for the lock, in all. A lock watchdog on this thread
   * tells its own spins (the event loop blocked by them) from starvation by the machine.
   */
  spunMs = 0

  private spinBounded(): boolean {
    const start = performance.now()
    const deadline = start + this.mainSpinMs
    try {
      do {
        for (let i = 0; i < SPIN_TRIES; i++) if (this.tryAcquire() || this.takeOverIfDead()) return true
      } while (performance.now() < deadline)
      return false
    } finally {
      this.spunMs += performance.now() - start
    }
  }

  private park(): boolean {
    Atomics.add(this.i32, this.base + WAITERS, 1)
    try {
      for (;;) {
        // The wake count first, then the owner: a release after this look bumps the count, so the wait
        // below returns at once instead of sleeping through it.
        const wakes = Atomics.load(this.i32, this.base + WAKES)
        const cur = Atomics.load(this.i32, this.base + OWNER)
        if (cur === 0 ? this.tryAcquire() : this.takeOverIfDead()) return true
        if (cur === 0) continue
        Atomics.wait(this.i32, this.base + WAKES, wakes, WAIT_SLICE_MS)
        // Running again (woken, timed out or a wake was sent meanwhile): the next release may wake a thread.
        Atomics.and(this.i32, this.base + WAITERS, ~WAKING)
      }
    } finally {
      Atomics.sub(this.i32, this.base + WAITERS, 1)
    }
  }
}

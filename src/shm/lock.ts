/**
 * An Atomics mutex whose lock word names its owner, plus the table of dead threads that lets a waiter
 * (or the main thread) take a lock over from a thread that died holding it.
 *
 * Memory layout (Int32 words from `base` in the caller's Int32Array over a SharedArrayBuffer):
 *
 * | word | name    | meaning                                                                      |
 * |------|---------|------------------------------------------------------------------------------|
 * | 0    | owner   | 0 = free; otherwise `threadId + 1` of the holder (main thread = 1)            |
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
 * @module
 */

/** Int32 words a lock occupies. */
export const LOCK_WORDS = 3
/** Recently exited threads remembered for lock takeover. */
export const DEAD_RING_SIZE = 64
/** Int32 words the dead-thread table occupies. */
export const DEAD_TABLE_WORDS = 1 + DEAD_RING_SIZE

const OWNER = 0
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
 * holder pauses.
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

/**
 * The mutex. Held only inside synchronous critical sections (never across an `await`), so one owner per
 * thread is exact even when a thread runs several executions.
 */
export class AtomicsLock {
  private readonly tag: number
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
    // CAS is the acquire fence: everything the previous owner stored before its release store is visible.
    return Atomics.compareExchange(this.i32, this.base + OWNER, 0, this.tag) === 0
  }

  /**
   * Takes the lock. Returns true when held. Workers: spin, then `Atomics.wait` in {@link WAIT_SLICE_MS}
   * slices, taking the lock over if its owner is in the dead table — may block, never forever once the
   * owner's exit is recorded. Main thread: spins at most `mainSpinMs` (never `Atomics.wait`), taking over
   * dead owners too, and returns false if a live owner still holds it. Throws if this thread holds it
   * already (not re-entrant) instead of waiting for itself forever.
   */
  acquire(): boolean {
    if (this.tryAcquire()) return true
    if (Atomics.load(this.i32, this.base + OWNER) === this.tag) {
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
      // Freed: leave it to the thread that released it for a moment (see HANDOFF_GRACE), then compete.
      spent += this.pause(HANDOFF_GRACE)
      if (Atomics.load(this.i32, this.base + OWNER) === 0 && this.tryAcquire()) return true
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
    return Atomics.load(this.i32, this.base + OWNER) - 1
  }

  /** Any thread. Never blocks. If the lock's owner is recorded dead, take the lock over from it. */
  takeOverIfDead(): boolean {
    const cur = Atomics.load(this.i32, this.base + OWNER)
    if (cur === 0 || cur === this.tag || !this.dead.has(cur - 1)) return false
    return Atomics.compareExchange(this.i32, this.base + OWNER, cur, this.tag) === cur
  }

  private spinBounded(): boolean {
    const deadline = performance.now() + this.mainSpinMs
    do {
      for (let i = 0; i < SPIN_TRIES; i++) if (this.tryAcquire() || this.takeOverIfDead()) return true
    } while (performance.now() < deadline)
    return false
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

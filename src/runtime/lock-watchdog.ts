/**
 * The lock watchdog: notices one holder keeping the state commit lock past `state.lockBudgetMs`. Main
 * thread only; a timer, nothing blocks.
 *
 * Every acquisition stores a new owner word (the holder's thread and its acquisition count, see
 * `AtomicsLock`), so the same non-zero word seen at two looks means one holding lasted from the first to
 * the second. The watchdog looks every tenth of the budget and reports a holding once, as soon as it has
 * lasted the budget (so at most 1.2 × the budget after it began); what to do is the engine's part.
 *
 * On an overloaded machine a thread can be descheduled for a while with the lock in hand, doing nothing
 * wrong. The main thread is then starved as well, and its looks come late: a look a whole budget or more
 * after the one before (the watchdog saw nothing of that stretch) starts the holding's clock again. Gaps
 * shorter than that — a busy event loop — do not, and neither does the time the main thread itself spent
 * spinning for the lock meanwhile: its own writes, each spinning up to `mainSpinMs` on the held lock, can
 * run back to back and block the event loop for longer than a budget, and that is the holder's doing, not
 * the machine's.
 *
 * @module
 */

/** Looks per budget: a holding is reported at most 2 / LOOKS budgets late. */
const LOOKS = 10

export class LockWatchdog {
  private word = 0
  private since = 0
  private reported = 0
  private lastLook = Number.NEGATIVE_INFINITY
  private timer: NodeJS.Timeout | undefined

  constructor(
    /** The commit lock's owner word, 0 when free. */
    private readonly ownerWord: () => number,
    private readonly budgetMs: number,
    /** Called once per holding that outlasts the budget, with its owner word. */
    private readonly onOverrun: (ownerWord: number) => void,
    /** Milliseconds the main thread has spent spinning for the lock, in all. */
    private readonly spunMs: () => number = () => 0,
  ) {}

  private lastSpun = 0

  start(): void {
    if (this.timer !== undefined) return
    this.timer = setInterval(() => this.look(performance.now()), this.interval)
    // The watchdog must not keep a process alive on its own.
    this.timer.unref()
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer)
    this.timer = undefined
  }

  private get interval(): number {
    return Math.max(1, this.budgetMs / LOOKS)
  }

  /** One look at the lock at time `now` (ms, `performance.now()`). */
  look(now: number): void {
    const word = this.ownerWord()
    const spun = this.spunMs()
    const stalled = now - this.lastLook - (spun - this.lastSpun) >= this.budgetMs
    this.lastLook = now
    this.lastSpun = spun
    if (word === 0 || word !== this.word || stalled) {
      this.word = word
      this.since = now
      return
    }
    if (word === this.reported || now - this.since < this.budgetMs) return
    this.reported = word
    this.onOverrun(word)
  }
}

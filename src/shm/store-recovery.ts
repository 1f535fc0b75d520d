/**
 * The commit lock as the store uses it, and recovery from a thread that died holding it: whoever takes the
 * lock next (a worker's commit, a reader stuck behind an odd sequence word, or the main thread when it
 * learns the thread exited) finds the journal not idle and completes or rolls back the dead thread's
 * commit before anything else (see `UndoJournal.recover`).
 *
 * Thread contract: `threadExited` — the main thread, never blocks. `lockOwner` — any thread, never blocks.
 * `acquire` — any thread; may block on a worker like a commit (never forever: a dead holder is taken over),
 * spins at most `mainSpinMs` on the main thread.
 *
 * @module
 */
import { JournalState } from './journal.js'
import { StoreRegions } from './store-layout.js'

export class StoreRecovery extends StoreRegions {
  /**
   * Main thread, never blocks. Records that `threadId` exited; if it held the commit lock, takes the lock
   * over, completes or rolls back its commit, and releases the lock. Idempotent.
   */
  threadExited(threadId: number): 'idle' | 'rolled_back' | 'completed' {
    this.dead.add(threadId)
    if (this.lock.owner() !== threadId || !this.lock.takeOverIfDead()) return 'idle'
    try {
      return this.journal.recover()
    } finally {
      this.lock.release()
    }
  }

  /** Any thread. Whether a thread currently holds the commit lock, and which. -1 when free. */
  lockOwner(): number {
    return this.lock.owner()
  }

  /**
   * Any thread, never blocks. The commit lock's whole owner word (0 when free): the same word seen twice
   * means one holding lasted between the looks (see `AtomicsLock.ownerWord`). For the lock watchdog.
   */
  lockWord(): number {
    return this.lock.ownerWord()
  }

  /** Main thread: milliseconds it spent spinning for the commit lock, in all (see `AtomicsLock.spunMs`). */
  lockSpunMs(): number {
    return this.lock.spunMs
  }

  /**
   * Any thread. Arms the commit lock's one-shot guard for this thread's next commit (see
   * `AtomicsLock.guard`): it runs holding the lock, before anything is written, and a throw aborts the
   * commit with nothing written. Disarm (`undefined`) after the call, in case it returned before locking.
   */
  armGuard(guard: ((ownerWord: number) => void) | undefined): void {
    this.lock.guard = guard
  }

  protected acquire(): boolean {
    if (!this.lock.acquire()) return false
    // A non-idle journal under a freshly taken lock means its last holder died mid-commit.
    if (this.journal.stateLocked() !== JournalState.IDLE) this.journal.recover()
    return true
  }

  /** A reader stuck behind an odd sequence word: if the commit's thread died, recover it. */
  protected waitOutDeadCommit(): void {
    if (this.lock.owner() < 0 || !this.lock.takeOverIfDead()) return
    try {
      this.journal.recover()
    } finally {
      this.lock.release()
    }
  }
}

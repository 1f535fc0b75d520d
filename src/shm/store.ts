/**
 * The shared key-value store: the facade over the regions and their jobs. It knows nothing about agents —
 * keys are bytes (`group ‖ name`), values are numbers or opaque bytes, and a commit's `meta` is opaque
 * bytes that its history entries carry.
 *
 * The layout (regions, control words, sizes) is in `store-layout.ts`; the lock and recovery from a dead
 * holder in `store-recovery.ts`; the lock-free read path in `store-read.ts`; the commit path in
 * `store-commit.ts`; the consistency audit in `store-audit.ts`.
 *
 * Thread contract: reads (`get`, `readGroup`, `history`, `stats`) — any thread, lock-free, never block
 * (they retry while a commit on the same key is in flight; `readGroup` walks under the lock when writers
 * keep moving the group). `commit`/`commitLocked`/`updateInline`/`deleteGroup`/`audit` — any thread; on a
 * worker they may block on the commit lock (never forever: a dead holder is taken over); on the main
 * thread they spin at most `mainSpinMs` and return BUSY. `threadExited` — the main thread, never blocks.
 *
 * @module
 */
import { auditRegions } from './store-audit.js'
import { StoreCommitter } from './store-commit.js'
import { type AttachOptions, createRegions, type StoreHandles, type StoreOptions } from './store-layout.js'

export { HEAD_MARK, hashBytes, ValueTag } from './hash-index.js'
export {
  type AttachOptions,
  CommitStatus,
  EXPECT_ABSENT,
  EXPECT_ANY,
  type GroupMember,
  HeadRef,
  type ReadCheck,
  ReadOut,
  StoreBusy,
  type StoreHandles,
  type StoreOptions,
  type StoreStats,
  WriteOp,
} from './store-layout.js'

/** The engine behind `SharedBufferManager`: attach once per thread. */
export class ShmStore extends StoreCommitter {
  /** Main thread: allocates and lays out every region. Throws RangeError when `maxBytes` is too small. */
  static create(o: StoreOptions, attach: AttachOptions): ShmStore {
    return new ShmStore(createRegions(o), attach)
  }

  /** Any thread: attaches to regions made by {@link create}. */
  static attach(handles: StoreHandles, opts: AttachOptions): ShmStore {
    return new ShmStore(handles, opts)
  }

  /** Test-only fault injection: called after every journal entry with the entry count, and with -1 after the commit point. */
  set onJournalEntry(fn: ((entries: number) => void) | undefined) {
    this.journal.onEntry = fn
  }

  /**
   * Consistency audit for tests and tools: takes the commit lock (recovering a dead holder's commit
   * first) and checks the index, group lists, counters and allocator against each other. Returns the
   * problems found; an empty list means consistent. Any thread; blocks like a commit.
   */
  audit(): string[] {
    if (!this.acquire()) return ['commit lock busy']
    try {
      return auditRegions(this.index, this.heap, this.ctrl)
    } finally {
      this.lock.release()
    }
  }
}

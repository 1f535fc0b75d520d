/**
 * `synchronized`: every read remembers the version it saw in each scope it looked in (an absent key
 * included). A `write`/`delete` of a key this execution read commits only if the key is unchanged since
 * (and then remembers the new version); otherwise it throws `StateConflictError` and reports a
 * `state_conflict`. A key never read is written blind. `update()` and `increment()` re-read inside their
 * atomic step and never conflict. In a transaction, a key written there but read only before it keeps
 * this rule.
 *
 * @module
 */
import type { RawValue, WriteOp } from '../shm/index.js'
import type { BufferCore } from './buffer-core.js'
import { decodeName, type KeyRef } from './codec.js'
import { readMembers } from './level-shared.js'
import { ABSENT, ABSENT_VERSION, ScopeView, type Version } from './scope-view.js'

export class SynchronizedView extends ScopeView {
  /** The version each key had when this execution last read or wrote it. */
  private readonly seen = new Map<string, Version>()

  lookup(c: BufferCore, name: string): unknown {
    const found = c.fetch(this, name)
    this.seen.set(name, found ? { slot: c.out.slot, seq: c.out.seq } : ABSENT_VERSION)
    return found ? c.codec.decode(c.out) : ABSENT
  }

  entries(c: BufferCore): Map<string, RawValue> {
    const all = new Map<string, RawValue>()
    for (const m of readMembers(c, this)) {
      const name = decodeName(m.name, 0)
      this.seen.set(name, { slot: m.slot, seq: m.seq })
      all.set(name, m.value)
    }
    return all
  }

  put(c: BufferCore, name: string, raw: RawValue | undefined, operation: string, r: KeyRef): boolean {
    return c.commitOne(this, name, raw, operation, r).found >= 0
  }

  override expected(name: string): Version | undefined {
    return this.seen.get(name)
  }

  override committed(name: string, op: WriteOp): void {
    this.seen.set(name, op.del ? ABSENT_VERSION : { slot: op.outSlot, seq: op.outSeq })
  }
}

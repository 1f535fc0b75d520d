/**
 * `isolated`: repeatable read per key. The first read of a key pins the committed value; later reads return
 * the pin, or this execution's own private `write`/`delete`, which are discarded when the execution ends.
 * `update()`, `increment()` and `transaction()` are the way out: they change the *committed* state
 * atomically (so counters stay exact), and afterwards the private view shows the committed result for the
 * keys they wrote (a private write to such a key is replaced).
 *
 * `readAll()` is one consistent snapshot: the scope's committed keys at one instant (one group read),
 * with this execution's private writes over them. Pins taken earlier may come from other instants (a
 * first read, a commit of this execution), so they cannot join it: the snapshot replaces every pin, and
 * the view stays that snapshot afterwards — a later read of a key it did not hold finds it absent — until
 * the next `readAll` or one of this execution's own commits moves a key.
 *
 * @module
 */
import { type RawValue, ValueTag, type WriteOp } from '../shm/index.js'
import type { BufferCore } from './buffer-core.js'
import { decodeName, type KeyRef, noneValue } from './codec.js'
import { readMembers } from './level-shared.js'
import { ABSENT, ScopeView } from './scope-view.js'

export class IsolatedView extends ScopeView {
  /** Committed values as first read (NONE = absent then). */
  private readonly pinned = new Map<string, RawValue>()
  /** This execution's private writes (NONE = deleted). */
  private readonly overlay = new Map<string, RawValue>()
  /** Set by `readAll`: the pins are one whole snapshot of the scope; a key not pinned was absent in it. */
  private whole = false

  lookup(c: BufferCore, name: string): unknown {
    const raw = this.overlay.get(name) ?? this.pin(c, name)
    return raw.tag === ValueTag.NONE ? ABSENT : c.codec.decode(raw)
  }

  private pin(c: BufferCore, name: string): RawValue {
    let raw = this.pinned.get(name)
    if (raw === undefined) {
      raw = this.whole ? noneValue() : c.fetchRaw(this, name)
      this.pinned.set(name, raw)
    }
    return raw
  }

  entries(c: BufferCore): Map<string, RawValue> {
    const members = readMembers(c, this)
    this.pinned.clear()
    this.whole = true
    for (const m of members) this.pinned.set(decodeName(m.name, 0), m.value)
    const all = new Map<string, RawValue>(this.pinned)
    for (const [name, raw] of this.overlay) all.set(name, raw)
    for (const [name, raw] of all) if (raw.tag === ValueTag.NONE) all.delete(name)
    return all
  }

  put(c: BufferCore, name: string, raw: RawValue | undefined, _operation: string, _r: KeyRef): boolean {
    if (raw !== undefined) {
      // A scratch number raw is reused by the next write: keep a copy.
      this.overlay.set(name, { tag: raw.tag, num: raw.num, bytes: raw.bytes })
      return true
    }
    const existed = this.lookup(c, name) !== ABSENT
    this.overlay.set(name, noneValue())
    return existed
  }

  override committed(name: string, op: WriteOp): void {
    this.overlay.delete(name)
    this.pinned.set(name, op.del ? noneValue() : { tag: op.tag, num: op.num, bytes: op.bytes })
  }
}

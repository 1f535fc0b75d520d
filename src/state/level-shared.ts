/**
 * `shared`: reads see the latest committed value (never torn, no lock); a `write` or `delete` commits at
 * once, last writer wins, atomic per key. A read-then-write by two executions may lose an update — that is
 * what `update()` and `increment()` are for. The execution scope behaves this way too (only its own
 * execution reaches it).
 *
 * @module
 */
import type { RawValue } from '../shm/index.js'
import type { BufferCore } from './buffer-core.js'
import { decodeName, type KeyRef } from './codec.js'
import { ABSENT, ScopeView } from './scope-view.js'

export class SharedView extends ScopeView {
  lookup(c: BufferCore, name: string): unknown {
    return c.fetch(this, name) ? c.codec.decode(c.out) : ABSENT
  }

  entries(c: BufferCore): Map<string, RawValue> {
    const all = new Map<string, RawValue>()
    for (const m of readMembers(c, this)) all.set(decodeName(m.name, 0), m.value)
    return all
  }

  put(c: BufferCore, name: string, raw: RawValue | undefined, operation: string, r: KeyRef): boolean {
    return c.commitOne(this, name, raw, operation, r).found >= 0
  }
}

/** The committed members of `sc`'s group, one consistent snapshot. */
export function readMembers(c: BufferCore, sc: ScopeView) {
  const members = c.store.readGroup(sc.group.head)
  if (members === undefined) throw c.busy('readAll')
  return members
}

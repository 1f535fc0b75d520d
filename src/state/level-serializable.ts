/**
 * `serializable`: an execution is an optimistic transaction over each scope at this level.
 *
 * - Reads see the committed state plus this execution's own pending writes, and remember the version they
 *   saw (an absent key counts). Every read also checks, when any commit happened since the last check,
 *   that everything read before is still current, so the values a handler sees always form one snapshot;
 *   if not, the read throws `StateConflictError` and the execution is re-run (a handler never goes on
 *   from an inconsistent view).
 * - `write`, `delete`, `update` and a transaction's writes on the scope are private until
 *   {@link SerializableLog.commit} (the worker calls it when the handler returns): one atomic commit that
 *   checks every version read and applies every write, or — if anything read changed — applies nothing.
 * - `increment(key, delta)` is kept as a delta and added at commit, under the commit lock, to the latest
 *   value: it never conflicts (unless this execution also read the key).
 *
 * One log serves both scopes of an execution (stream and global), so the commit spans them.
 *
 * @module
 */
import { StateConflictError } from '../errors.js'
import {
  CommitStatus,
  EXPECT_ABSENT,
  EXPECT_ANY,
  type RawValue,
  type ReadCheck,
  ValueTag,
  type WriteOp,
} from '../shm/index.js'
import { addTo, type BufferCore, notSync, type UpdateStep } from './buffer-core.js'
import { decodeName, inlineTag, type KeyRef, noneValue } from './codec.js'
import { readMembers } from './level-shared.js'
import { ABSENT, isThenable, ScopeView, slotKey } from './scope-view.js'

interface ReadEntry {
  sc: SerializableView
  name: string
  slot: number
  seq: number
}

/** A key whose commit conflicted (for the `state_conflict` event). */
export interface ConflictedKey {
  key: string
  scope: 'stream' | 'global'
}

export class SerializableView extends ScopeView {
  override readonly deferred = true
  /** Private writes (NONE = deleted), applied at commit. */
  readonly pending = new Map<string, RawValue>()
  /** Pending increments of keys with no private write, added to the latest value at commit. */
  readonly adds = new Map<string, number>()

  constructor(
    group: ScopeView['group'],
    level: ScopeView['level'],
    private readonly log: SerializableLog,
  ) {
    super(group, level)
    log.views.push(this)
  }

  lookup(c: BufferCore, name: string): unknown {
    const p = this.pending.get(name)
    if (p !== undefined) return p.tag === ValueTag.NONE ? ABSENT : c.codec.decode(p)
    const v = this.log.read(c, this, name)
    const d = this.adds.get(name)
    return d === undefined ? v : addTo(v === ABSENT ? undefined : v, d, name)
  }

  entries(c: BufferCore): Map<string, RawValue> {
    const all = new Map<string, RawValue>()
    for (const m of readMembers(c, this)) {
      const name = decodeName(m.name, 0)
      this.log.note(c, this, name, m.slot, m.seq)
      all.set(name, m.value)
    }
    this.log.checkSnapshot(c)
    for (const [name, d] of this.adds) {
      const base = all.get(name)
      const n = addTo(base === undefined ? undefined : c.codec.decode(base), d, name)
      all.set(name, { tag: inlineTag(n), num: n, bytes: undefined })
    }
    for (const [name, raw] of this.pending) all.set(name, raw)
    for (const [name, raw] of all) if (raw.tag === ValueTag.NONE) all.delete(name)
    return all
  }

  put(c: BufferCore, name: string, raw: RawValue | undefined, _operation: string, _r: KeyRef): boolean {
    const existed = raw !== undefined || this.lookup(c, name) !== ABSENT
    this.stage(c, name, raw)
    return existed
  }

  override update(c: BufferCore, step: UpdateStep): unknown {
    const current = this.lookup(c, step.key)
    const next = step.fn!(current === ABSENT ? undefined : current)
    if (isThenable(next)) throw notSync('update fn')
    this.stage(c, step.key, c.codec.encode(step.key, next))
    return next
  }

  override increment(c: BufferCore, name: string, delta: number): void {
    const p = this.pending.get(name)
    if (p === undefined) {
      this.adds.set(name, (this.adds.get(name) ?? 0) + delta)
      return
    }
    const n = addTo(p.tag === ValueTag.NONE ? undefined : c.codec.decode(p), delta, name)
    this.pending.set(name, { tag: inlineTag(n), num: n, bytes: undefined })
  }

  override stage(_c: BufferCore, name: string, raw: RawValue | undefined): void {
    // A scratch number raw is reused by the next write: keep a copy.
    this.pending.set(name, raw === undefined ? noneValue() : { tag: raw.tag, num: raw.num, bytes: raw.bytes })
    this.adds.delete(name)
  }
}

/** The read set of one execution's `serializable` scopes, and their commit. */
export class SerializableLog {
  readonly views: SerializableView[] = []
  private readonly reads = new Map<string, ReadEntry>()
  /** The store version at which every read was last known current (-1: not yet checked). */
  private validatedAt = -1
  /** Set once this attempt is known to conflict: nothing more is reported, the commit applies nothing. */
  private conflicted: ConflictedKey | undefined

  /** The key of the last conflict, once the attempt conflicted. */
  get conflict(): ConflictedKey | undefined {
    return this.conflicted
  }

  /** The committed value of `name` (or ABSENT), remembering its version; keeps the snapshot consistent. */
  read(c: BufferCore, sc: SerializableView, name: string): unknown {
    const found = c.fetch(sc, name)
    const slot = found ? c.out.slot : EXPECT_ABSENT
    const seq = found ? c.out.seq : 0
    // Decoded before the snapshot check, which reads other keys through the same output.
    const value = found ? c.codec.decode(c.out) : ABSENT
    this.note(c, sc, name, slot, seq)
    this.checkSnapshot(c)
    return value
  }

  /** Remembers that `name` was seen at `slot`/`seq`; a key seen before at another version is a conflict. */
  note(c: BufferCore, sc: SerializableView, name: string, slot: number, seq: number): void {
    const k = slotKey(sc, name)
    const prev = this.reads.get(k)
    if (prev === undefined) this.reads.set(k, { sc, name, slot, seq })
    else if (prev.slot !== slot || prev.seq !== seq) throw this.fail(c, sc, name)
  }

  /**
   * After a read: if any commit happened since the last check, confirms every read is still current. The
   * version is read after the data: a value written by a commit is visible only once that commit's version
   * is, so an unchanged version proves that nothing read since the last check came from a newer commit.
   */
  checkSnapshot(c: BufferCore): void {
    const now = c.store.version()
    if (now === this.validatedAt) return
    const stale = this.firstStale(c)
    if (stale !== undefined) throw this.fail(c, stale.sc, stale.name)
    this.validatedAt = now
  }

  /** Whether every read is still current (lock-free; a failed attempt asks this to tell a conflict). */
  current(c: BufferCore): boolean {
    return this.conflicted === undefined && this.firstStale(c) === undefined
  }

  private firstStale(c: BufferCore): ReadEntry | undefined {
    for (const r of this.reads.values()) {
      const found = c.fetch(r.sc, r.name)
      const slot = found ? c.out.slot : EXPECT_ABSENT
      const seq = found ? c.out.seq : 0
      if (slot !== r.slot || seq !== r.seq) return r
    }
    return undefined
  }

  /**
   * Applies every pending write and increment of every view in one atomic commit if every read is still
   * current. True when committed (or nothing was pending and the reads were current); false on a conflict,
   * reported once (`state_conflict`). Either way the views start afresh. Throws (nothing applied) on a full
   * region or an increment of a non-number.
   */
  commit(c: BufferCore): boolean {
    try {
      if (this.conflicted !== undefined) return false
      const ops: WriteOp[] = []
      const owners: { sc: SerializableView; name: string }[] = []
      let adds = 0
      for (const sc of this.views) {
        for (const [name, raw] of sc.pending) {
          const read = this.reads.get(slotKey(sc, name))
          const del = raw.tag === ValueTag.NONE
          ops.push(c.op(sc, name, del ? undefined : raw, read ? read.slot : EXPECT_ANY, read ? read.seq : 0))
          owners.push({ sc, name })
        }
        adds += sc.adds.size
      }
      if (ops.length === 0 && adds === 0) {
        const stale = this.firstStale(c)
        if (stale !== undefined) this.fail(c, stale.sc, stale.name)
        return stale === undefined
      }
      const checks = this.checks()
      const status =
        adds === 0
          ? c.commit(ops, checks.list)
          : c.commitLocked(() => this.withIncrements(c, ops, owners, checks.list))
      if (status === CommitStatus.CONFLICT) {
        const at = c.store.conflictAt
        const who = at < ops.length ? owners[at]! : checks.owners[at - ops.length]
        if (who !== undefined) this.fail(c, who.sc, who.name)
        else this.fail(c, owners[0]!.sc, owners[0]!.name)
        return false
      }
      c.check(status, 'the serializable commit')
      for (let i = 0; i < ops.length; i++) c.after(owners[i]!.sc, owners[i]!.name, ops[i]!)
      return true
    } finally {
      this.reset()
    }
  }

  /** Checks for keys read but not written; increments of keys read are checked by their op. */
  private checks(): { list: ReadCheck[]; owners: ReadEntry[] } {
    const list: ReadCheck[] = []
    const owners: ReadEntry[] = []
    for (const r of this.reads.values()) {
      if (r.sc.pending.has(r.name) || r.sc.adds.has(r.name)) continue
      const ref = r.sc.group.ref(r.name)
      list.push({ key: ref.key, keyLen: ref.keyLen, hash: ref.hash, expectSlot: r.slot, expectSeq: r.seq })
      owners.push(r)
    }
    return { list, owners }
  }

  /**
   * Runs under the commit lock: adds each pending increment to the latest value (the lock holds it still)
   * and returns the whole commit. An increment of a key this execution read expects the version it read.
   */
  private withIncrements(
    c: BufferCore,
    ops: WriteOp[],
    owners: { sc: SerializableView; name: string }[],
    checks: ReadCheck[],
  ): { writes: readonly WriteOp[]; checks: readonly ReadCheck[] } {
    const writes = ops.slice()
    for (const sc of this.views) {
      for (const [name, delta] of sc.adds) {
        const found = c.fetch(sc, name)
        const next = addTo(found ? c.codec.decode(c.out) : undefined, delta, name)
        const read = this.reads.get(slotKey(sc, name))
        const slot = read ? read.slot : found ? c.out.slot : EXPECT_ABSENT
        const seq = read ? read.seq : found ? c.out.seq : 0
        writes.push(c.op(sc, name, { tag: inlineTag(next), num: next, bytes: undefined }, slot, seq))
        owners.push({ sc, name })
      }
    }
    return { writes, checks }
  }

  /** Drops every pending write and the read set (after a commit, or when an attempt is abandoned). */
  reset(): void {
    for (const sc of this.views) {
      sc.pending.clear()
      sc.adds.clear()
    }
    this.reads.clear()
    this.validatedAt = -1
    this.conflicted = undefined
  }

  /** Marks the attempt as conflicting on `name` (reported once) and returns the error to throw. */
  private fail(c: BufferCore, sc: SerializableView, name: string): StateConflictError {
    const scope = sc.group.scope as 'stream' | 'global'
    if (this.conflicted === undefined) {
      this.conflicted = { key: name, scope }
      return c.conflict(sc, name)
    }
    return new StateConflictError(name, scope, { executionId: c.executionId, streamId: c.streamId })
  }
}

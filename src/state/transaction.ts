/**
 * `StateTransaction`, the `tx` of `StreamBuffer.transaction(fn)`: reads see the committed state plus the
 * transaction's own pending writes; nothing is visible to others until it commits, all or nothing. Its
 * writes of a `serializable` scope join the execution's own commit (they become the execution's private
 * writes when the transaction ends); the rest commit when it ends.
 *
 * Thread contract: the thread of its buffer; synchronous.
 *
 * @module
 */
import { CommitStatus, EXPECT_ANY, type RawValue, type ReadCheck, type WriteOp } from '../shm/index.js'
import { type BufferCore, notSync } from './buffer-core.js'
import type { Permissions } from './permissions.js'
import { ABSENT, ABSENT_VERSION, isThenable, type ScopeView, slotKey, type Version } from './scope-view.js'
import type { ScopeOption, StateScope } from './types.js'

export const LOOKUP_ORDER: readonly StateScope[] = ['execution', 'stream', 'global']

interface TxWrite {
  sc: ScopeView
  name: string
  raw: RawValue | undefined
}

interface TxRead {
  sc: ScopeView
  name: string
  version: Version
}

/**
 * The `tx` of {@link StreamBuffer.transaction}. Same options as the buffer (reads without scope: execution,
 * stream, global; writes default to execution).
 */
export class StateTransaction {
  private readonly reads = new Map<string, TxRead>()
  private readonly writes = new Map<string, TxWrite>()

  /** @internal */
  constructor(
    private readonly core: BufferCore,
    private readonly perms: Permissions,
  ) {}

  read<T = unknown>(key: string, opts?: ScopeOption): T | undefined {
    this.perms.allow('read', key)
    const v = this.resolve(key, opts)
    return (v === ABSENT ? undefined : v) as T | undefined
  }

  has(key: string, opts?: ScopeOption): boolean {
    this.perms.allow('read', key)
    return this.resolve(key, opts) !== ABSENT
  }

  write(key: string, value: unknown, opts?: ScopeOption): void {
    this.perms.allow('write', key)
    const sc = this.core.view(opts?.scope ?? 'execution')
    sc.group.ref(key, true)
    this.writes.set(slotKey(sc, key), { sc, name: key, raw: this.core.codec.encode(key, value) })
  }

  update<T = unknown>(key: string, fn: (current: T | undefined) => T, opts?: ScopeOption): T {
    const scope = opts?.scope ?? 'execution'
    const next = fn(this.read<T>(key, { scope }))
    if (isThenable(next)) throw notSync('update fn')
    this.write(key, next, { scope })
    return next
  }

  delete(key: string, opts?: ScopeOption): boolean {
    this.perms.allow('write', key)
    const sc = this.core.view(opts?.scope ?? 'execution')
    const existed = this.lookup(sc, key) !== ABSENT
    this.writes.set(slotKey(sc, key), { sc, name: key, raw: undefined })
    return existed
  }

  private ops: WriteOp[] = []
  /** The writes behind {@link ops}, in the same order. */
  private opWrites: TxWrite[] = []
  private fromRead: boolean[] = []
  private checks: ReadCheck[] = []

  /** @internal Builds the commit's ops (expecting the versions read) and checks (keys only read). */
  build(): { writes: readonly WriteOp[]; checks: readonly ReadCheck[] } {
    const c = this.core
    this.ops = []
    this.opWrites = []
    this.fromRead = []
    this.checks = []
    for (const [k, w] of this.writes) {
      if (w.sc.deferred) continue
      const read = this.reads.get(k)
      const v = read ? read.version : w.sc.expected(w.name)
      this.ops.push(c.op(w.sc, w.name, w.raw, v ? v.slot : EXPECT_ANY, v ? v.seq : 0))
      this.opWrites.push(w)
      this.fromRead.push(read !== undefined)
    }
    for (const [k, r] of this.reads) {
      if (this.writes.has(k)) continue
      const ref = r.sc.group.ref(r.name)
      this.checks.push({
        key: ref.key,
        keyLen: ref.keyLen,
        hash: ref.hash,
        expectSlot: r.version.slot,
        expectSeq: r.version.seq,
      })
    }
    return { writes: this.ops, checks: this.checks }
  }

  /** @internal Commits optimistically; false when a key read here changed (the caller re-runs the function). */
  commit(): boolean {
    const { writes, checks } = this.build()
    if (writes.length === 0) {
      if (!this.stillCurrent()) return false
      this.handOver()
      return true
    }
    return this.settle(this.core.commit(writes, checks))
  }

  /**
   * @internal After a commit of {@link build}'s ops: true when committed (private views and hooks
   * follow), false on a conflict with a key read here; throws on a conflict with a key this execution
   * read before the transaction (`synchronized`) and on every other failure.
   */
  settle(status: CommitStatus): boolean {
    const c = this.core
    if (status === CommitStatus.CONFLICT) {
      const at = c.store.conflictAt
      if (at < this.ops.length && !this.fromRead[at]) {
        const w = this.opWrites[at]!
        throw c.conflict(w.sc, w.name)
      }
      return false
    }
    c.check(status, 'transaction')
    for (let i = 0; i < this.ops.length; i++)
      c.after(this.opWrites[i]!.sc, this.opWrites[i]!.name, this.ops[i]!)
    this.handOver()
    return true
  }

  /** Writes of deferred (`serializable`) scopes become the execution's private writes. */
  private handOver(): void {
    for (const w of this.writes.values()) if (w.sc.deferred) w.sc.stage(this.core, w.name, w.raw)
  }

  /** A transaction with nothing to commit now: its reads form one snapshot if every version is still current. */
  private stillCurrent(): boolean {
    const c = this.core
    for (const r of this.reads.values()) {
      const found = c.fetch(r.sc, r.name)
      const now: Version = found ? { slot: c.out.slot, seq: c.out.seq } : ABSENT_VERSION
      if (now.slot !== r.version.slot || now.seq !== r.version.seq) return false
    }
    return true
  }

  private resolve(key: string, opts: ScopeOption | undefined): unknown {
    const c = this.core
    if (opts?.scope !== undefined) return this.lookup(c.view(opts.scope), key)
    for (const scope of LOOKUP_ORDER) {
      const v = this.lookup(c.view(scope), key)
      if (v !== ABSENT) return v
    }
    return ABSENT
  }

  private lookup(sc: ScopeView, name: string): unknown {
    const k = slotKey(sc, name)
    const w = this.writes.get(k)
    if (w !== undefined) return w.raw === undefined ? ABSENT : this.core.codec.decode(w.raw)
    // A deferred scope keeps its own read set and snapshot: the execution's view is the transaction's.
    if (sc.deferred) return sc.lookup(this.core, name)
    const c = this.core
    const found = c.fetch(sc, name)
    if (!this.reads.has(k)) {
      this.reads.set(k, { sc, name, version: found ? { slot: c.out.slot, seq: c.out.seq } : ABSENT_VERSION })
    }
    return found ? c.codec.decode(c.out) : ABSENT
  }
}
